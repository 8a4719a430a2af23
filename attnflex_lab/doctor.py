"""`python -m attnflex_lab doctor`: print the environment and say plainly what to fix."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from dataclasses import dataclass

from .profiles import PROFILE_ENV, profile


@dataclass(frozen=True)
class Requirement:
    module: str        # import name
    minimum: str       # lowest version the lab is tested with
    fix: str           # what a learner should type
    needed: bool = True  # False: only warn (e.g. jupyterlab is not needed on Colab)
    distribution: str = ""  # the pip name, where the module has no __version__ (prometheus_client)


REQUIREMENTS = (
    Requirement("torch", "2.3", "pip install 'torch>=2.3'  (a CPU build: see the README)"),
    Requirement("numpy", "1.24", "pip install 'numpy>=1.24'"),
    Requirement("matplotlib", "3.7", "pip install 'matplotlib>=3.7'"),
    Requirement("plotly", "5.15", "pip install 'plotly>=5.15'"),
    Requirement("ipywidgets", "7.7", "pip install 'ipywidgets>=7.7'"),
    Requirement("tqdm", "4.64", "pip install 'tqdm>=4.64'"),
    Requirement("sklearn", "1.2", "pip install 'scikit-learn>=1.2'"),
    Requirement("fastapi", "0.110", "pip install 'fastapi>=0.110'  (lesson 12's server)"),
    Requirement("uvicorn", "0.30", "pip install 'uvicorn>=0.30'  (lesson 12's server)"),
    Requirement("prometheus_client", "0.17", "pip install 'prometheus_client>=0.17'",
                distribution="prometheus_client"),
    Requirement("filelock", "3.12", "pip install 'filelock>=3.12'  (the train command's folder lock)"),
    Requirement("jupyterlab", "4.0", "pip install 'jupyterlab>=4'  (or: make lab)", needed=False),
)


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):  # '0rc1' -> stop after 0
            break
    return tuple(parts)


def version_at_least(version: str, minimum: str) -> bool:
    """Compare dotted versions numerically: '2.13.0+cpu' >= '2.3' is True."""
    return _parse(version) >= _parse(minimum)


def _installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "0"


def check_requirements(python_version: tuple[int, int] | None = None) -> list[tuple[str, str, str]]:
    """Return (severity, problem, fix) for each thing that is missing or too old."""
    problems = []
    py = python_version or sys.version_info[:2]
    if tuple(py) < (3, 10):
        problems.append(("error", f"Python {py[0]}.{py[1]} is too old (needs 3.10+)",
                         "install Python 3.10 or newer and recreate the environment"))
    for req in REQUIREMENTS:
        severity = "error" if req.needed else "warning"
        try:
            mod = importlib.import_module(req.module)
        except ImportError:
            problems.append((severity, f"{req.module} is not installed", req.fix))
            continue
        found = getattr(mod, "__version__", None) or _installed_version(req.distribution or req.module)
        if not version_at_least(found, req.minimum):
            problems.append((severity, f"{req.module} {found} is older than {req.minimum}", req.fix))
    try:
        profile()
    except ValueError as err:
        problems.append(("error", str(err), f"unset {PROFILE_ENV} or set it to smoke, cpu or gpu"))
    return problems


def run_doctor(out=None) -> int:
    """Print the report and any problems; return the exit status (0 when the lab can run)."""
    out = out or sys.stdout
    problems = check_requirements()
    errors = [p for p in problems if p[0] == "error"]
    try:
        from .device import environment_report

        print("attnflex-lab environment\n", file=out)
        print(environment_report(), file=out)
    except ImportError as err:  # torch or numpy missing: the checks below say which
        print(f"(environment report unavailable: {err})", file=out)
    print(file=out)
    for severity, problem, fix in problems:
        print(f"{severity.upper()}: {problem}\n  fix: {fix}", file=out)
    if errors:
        print(f"\n{len(errors)} problem(s) stop the lab from running; fix them and run doctor again.",
              file=out)
        return 1
    print("OK: everything the lab needs is here.", file=out)
    return 0
