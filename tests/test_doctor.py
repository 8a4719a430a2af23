"""`python -m attnflex_lab doctor`: prints the report, and fails with a fix when something is wrong."""

import io
import os
import subprocess
import sys

import pytest

from attnflex_lab import doctor
from attnflex_lab.doctor import Requirement, version_at_least


def test_doctor_prints_the_report_and_exits_zero():
    env = {**os.environ, "ATTNFLEX_PROFILE": "smoke"}
    result = subprocess.run([sys.executable, "-m", "attnflex_lab", "doctor"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for key in ("python", "torch", "ipywidgets", "jupyterlab", "plotly", "profile"):
        assert key in result.stdout
    assert "smoke" in result.stdout
    assert "OK: everything the lab needs is here." in result.stdout


def test_doctor_fails_with_a_fix_on_a_bad_profile():
    env = {**os.environ, "ATTNFLEX_PROFILE": "turbo"}
    result = subprocess.run([sys.executable, "-m", "attnflex_lab", "doctor"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "ERROR: ATTNFLEX_PROFILE='turbo' is not a profile" in result.stdout
    assert "fix: unset ATTNFLEX_PROFILE" in result.stdout


def test_doctor_reports_a_missing_and_a_too_old_package(monkeypatch):
    monkeypatch.setattr(doctor, "REQUIREMENTS", (
        Requirement("no_such_module_for_attnflex", "1.0", "pip install no-such-module"),
        Requirement("numpy", "999.0", "pip install 'numpy>=999'"),
        Requirement("json", "0", "nothing", needed=False),
    ))
    out = io.StringIO()
    assert doctor.run_doctor(out) == 1
    text = out.getvalue()
    assert "ERROR: no_such_module_for_attnflex is not installed" in text
    assert "fix: pip install no-such-module" in text
    assert "is older than 999.0" in text and "fix: pip install 'numpy>=999'" in text
    assert "2 problem(s) stop the lab from running" in text


def test_doctor_only_warns_for_optional_packages(monkeypatch):
    monkeypatch.setattr(doctor, "REQUIREMENTS", (
        Requirement("no_such_module_for_attnflex", "1.0", "pip install it", needed=False),))
    out = io.StringIO()
    assert doctor.run_doctor(out) == 0
    assert "WARNING: no_such_module_for_attnflex is not installed" in out.getvalue()


def test_doctor_flags_an_old_python():
    problems = doctor.check_requirements(python_version=(3, 9))
    assert any("Python 3.9 is too old" in p[1] for p in problems)


@pytest.mark.parametrize("found, minimum, ok", [
    ("2.13.0+cpu", "2.3", True), ("2.3.0", "2.3", True), ("2.2.9", "2.3", False),
    ("7.7.1", "7.7", True), ("8.1.0", "7.7", True), ("7.6.5", "7.7", False),
    ("4.0.0rc1", "4.0", True), ("10.0", "9.9", True), ("1.24", "1.24.1", False),
])
def test_version_comparison_is_numeric(found, minimum, ok):
    assert version_at_least(found, minimum) is ok


def test_cli_rejects_unknown_commands():
    result = subprocess.run([sys.executable, "-m", "attnflex_lab", "frobnicate"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "invalid choice" in result.stderr
