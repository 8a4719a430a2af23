"""pytest runs notebooks in the smoke profile whatever the caller's ATTNFLEX_PROFILE, unless it opts in.

The first two tests run ``python -m pytest`` in a subprocess on a copy of the repository's pytest
set-up (the root ``conftest.py`` and ``pyproject.toml``) with a one-cell notebook that writes down
the profile (and the thread setting) its kernel sees, plus a plain test that writes down the
profile the pytest process sees after the notebook ran.

Planted bugs: without the pin in conftest.py the kernel reports "gpu" (the caller's value) and both
subprocess tests fail; setting the pin with ``os.environ[...] =`` in ``pytest_configure`` (for the
whole session) makes both fail on the plain test's view. How the profile is chosen (option,
environment, bad values) is tested in-process, which is cheaper.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOK_CELL = """\
import json, os
import attnflex_lab as afl
with open(os.environ["PIN_REPORT"], "a") as f:
    f.write(json.dumps({"where": "kernel", "profile": afl.profile(),
                        "threads": os.environ.get("OMP_NUM_THREADS")}) + "\\n")
"""

PLAIN_TEST = """\
import json, os


def test_after_the_notebook():
    with open(os.environ["PIN_REPORT"], "a") as f:
        f.write(json.dumps({"where": "pytest", "env": os.environ.get("ATTNFLEX_PROFILE")}) + "\\n")
"""


def _run(tmp_path, *options, **env_overrides):
    """Run pytest on [notebook, plain test] in a copy of the set-up; return (result, report lines)."""
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CELL)]
    nbformat.write(nb, project / "notebooks" / "profile_probe.ipynb")
    (project / "notebooks" / "test_after.py").write_text(PLAIN_TEST)
    report = tmp_path / "report.jsonl"

    ours = ("ATTNFLEX_PROFILE", "ATTNFLEX_NOTEBOOK_PROFILE", "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update(PIN_REPORT=str(report),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(env_overrides)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--durations=0",
         "notebooks/profile_probe.ipynb", "notebooks/test_after.py", *options],
        cwd=project, env=env, capture_output=True, text=True, timeout=180,
    )
    lines = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    return done, lines


def _seen(lines):
    """(the kernel's profile, the kernel's OMP_NUM_THREADS, ATTNFLEX_PROFILE in pytest after the notebook)."""
    by_where = {line["where"]: line for line in lines}
    kernel = by_where.get("kernel", {})
    return kernel.get("profile"), kernel.get("threads"), by_where.get("pytest", {}).get("env", "<not run>")


@pytest.mark.slow
def test_notebooks_are_pinned_to_smoke(tmp_path):
    done, lines = _run(tmp_path, ATTNFLEX_PROFILE="gpu")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    kernel, threads, pytest_env = _seen(lines)
    assert kernel == "smoke", f"the notebook kernel ran in {kernel!r}; ATTNFLEX_PROFILE=gpu leaked in"
    assert threads == "1", f"a smoke kernel should get OMP_NUM_THREADS=1, got {threads!r}"
    assert pytest_env == "gpu", f"after the notebook, other tests saw ATTNFLEX_PROFILE={pytest_env!r}, not 'gpu'"
    assert "notebooks run in the 'smoke' profile (pinned" in done.stdout


@pytest.mark.slow
def test_a_cpu_run_is_an_explicit_opt_in(tmp_path):
    done, lines = _run(tmp_path, "--notebook-profile=cpu", ATTNFLEX_PROFILE="gpu")  # unset could mean cpu
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    kernel, threads, pytest_env = _seen(lines)
    assert kernel == "cpu", f"--notebook-profile=cpu gave the kernel {kernel!r}"
    assert threads is None, f"a cpu kernel keeps torch's own thread count, got OMP_NUM_THREADS={threads!r}"
    assert pytest_env == "gpu", f"the opt-in leaked into the pytest process: ATTNFLEX_PROFILE={pytest_env!r}"
    assert "notebooks run in the 'cpu' profile (opted in" in done.stdout


def _root_conftest():
    """The root conftest.py as a plain module (pytest has it loaded under another name)."""
    spec = importlib.util.spec_from_file_location("root_conftest_under_test", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebook_profile_comes_from_the_option_then_the_environment():
    choose = _root_conftest().notebook_profile
    assert choose(None, {}) == "smoke"
    assert choose(None, {"ATTNFLEX_PROFILE": "gpu"}) == "smoke"          # a learner's setting is no opt-in
    assert choose(None, {"ATTNFLEX_NOTEBOOK_PROFILE": " CPU "}) == "cpu"
    assert choose(None, {"ATTNFLEX_NOTEBOOK_PROFILE": ""}) == "smoke"
    assert choose("gpu", {"ATTNFLEX_NOTEBOOK_PROFILE": "cpu"}) == "gpu"  # the option wins


def test_a_bad_notebook_profile_is_refused_clearly():
    with pytest.raises(pytest.UsageError, match=r"ATTNFLEX_NOTEBOOK_PROFILE='turbo' is not a profile; "
                                                r"use one of smoke, cpu, gpu"):
        _root_conftest().notebook_profile(None, {"ATTNFLEX_NOTEBOOK_PROFILE": "turbo"})
