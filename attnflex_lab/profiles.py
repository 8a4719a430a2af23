"""Profiles: one lab, three sizes.

``profile()`` says how big every run in the lab should be:

- ``"smoke"``: the tests. Every cell runs, tiny sizes, a notebook in well under a minute on 2 CPU cores.
- ``"cpu"``:   a learner's laptop. Minutes, and models that really learn.
- ``"gpu"``:   Colab or better. Full-size runs.

Notebooks size their runs with ``by_profile(smoke=..., cpu=..., gpu=...)``, never with ad-hoc flags.
"""

from __future__ import annotations

import os
from typing import TypeVar

PROFILES = ("smoke", "cpu", "gpu")
PROFILE_ENV = "ATTNFLEX_PROFILE"
# A dry run (`make test-gpu-dry`) executes the lessons at one profile's data and model sizes with every
# training loop cut to this many steps: it finds, in minutes on a CPU, the crashes a full run would
# meet (shapes, sizes, dtypes), and checks nothing that needs a trained model.
DRY_RUN_ENV = "ATTNFLEX_DRY_RUN_STEPS"

T = TypeVar("T")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # doctor reports a missing torch; profile() still answers
        return False
    return torch.cuda.is_available()


def profile() -> str:
    """Return ``"smoke"``, ``"cpu"`` or ``"gpu"``.

    Read from the ``ATTNFLEX_PROFILE`` environment variable (case and surrounding spaces ignored);
    when it is unset or empty: ``"gpu"`` where CUDA is available, else ``"cpu"``.
    """
    raw = os.environ.get(PROFILE_ENV, "")
    value = raw.strip().lower()
    if not value:
        return "gpu" if _cuda_available() else "cpu"
    if value not in PROFILES:
        raise ValueError(
            f"{PROFILE_ENV}={raw!r} is not a profile; use one of {', '.join(PROFILES)} "
            f"(or unset it to get 'gpu' where CUDA is available and 'cpu' elsewhere)"
        )
    return value


def run_steps(steps: int) -> int:
    """How many of a training loop's ``steps`` to run: all of them, except in a dry run.

    Every training loop in the lab asks this once. With ``ATTNFLEX_DRY_RUN_STEPS=n`` set (a whole
    number, at least 1) it runs ``min(steps, n)``; the config still says ``steps``, so a schedule
    keeps its shape and only its first steps run.

    >>> run_steps(2_000)   # with ATTNFLEX_DRY_RUN_STEPS unset
    2000
    """
    raw = os.environ.get(DRY_RUN_ENV, "").strip()
    if not raw:
        return steps
    try:
        cap = int(raw)
    except ValueError:
        cap = 0
    if cap < 1:
        raise ValueError(f"{DRY_RUN_ENV}={raw!r} is not a step count; use a whole number ≥ 1, or unset it "
                         f"to run every step")
    return min(steps, cap)


def by_profile(*, smoke: T, cpu: T, gpu: T, profile_name: str | None = None) -> T:
    """Pick the value for the current (or the given) profile.

    >>> by_profile(smoke=50, cpu=2_000, gpu=20_000, profile_name="cpu")
    2000
    """
    name = profile() if profile_name is None else profile_name
    if name not in PROFILES:
        raise ValueError(f"profile_name={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[name]
