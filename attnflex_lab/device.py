"""Where the lab runs: device choice, seeding, Colab detection and an environment report."""

from __future__ import annotations

import importlib
import os
import platform
import random
import sys

import numpy as np
import torch

from .profiles import profile


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA, then Apple MPS, then CPU.

    Asking for a device that is not there is an error, not a silent fallback.
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for, but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {str(device)!r} was asked for, but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (every device) so a run can be repeated exactly."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (learners and libraries still use the global RNG)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", "unknown")


class EnvironmentReport(dict):
    """A dict of what the lab found, shown as a table in a terminal and in a notebook."""

    def __str__(self) -> str:
        width = max(len(k) for k in self)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.items())

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>"
                       for k, v in self.items())
        return f"<table>{rows}</table>"


def environment_report() -> EnvironmentReport:
    """Python, torch, accelerators, the notebook stack and the active profile, as one table."""
    report = EnvironmentReport()
    report["python"] = platform.python_version()
    report["platform"] = f"{platform.system()} {platform.machine()}"
    report["torch"] = torch.__version__
    report["cuda available"] = str(torch.cuda.is_available())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report["cuda version"] = str(torch.version.cuda)
        report["gpu"] = f"{props.name} ({props.total_memory / 2**30:.1f} GiB) x{torch.cuda.device_count()}"
    report["mps available"] = str(_mps_available())
    report["cpu threads"] = str(torch.get_num_threads())
    report["device"] = str(pick_device())
    for name in ("numpy", "matplotlib", "plotly", "ipywidgets", "jupyterlab", "tqdm", "sklearn"):
        report[name] = _version(name) or "not installed"
    report["in colab"] = str(in_colab())
    try:
        report["profile"] = profile()
    except ValueError as err:
        report["profile"] = f"invalid: {err}"
    return report
