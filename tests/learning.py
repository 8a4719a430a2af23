"""What the learning tests share: recipes trained once per test process in the cpu profile.

The full-scale tier (tests/long, ``make test-long``) trains the same recipes in the gpu profile
with ``trained(name, seed, profile_name="gpu")``.

Each learning-test file trains only what it checks, so pytest-xdist (one file per worker) can run
two files at once; a test that compares seeds or models reuses the runs the tests before it made.
"""

import functools

import pytest

from attnflex_lab import recipes

SEEDS = (0, 1, 2)
# For the heaviest cpu learning files: seed 0 runs in `make test`, seeds 1 and 2 (and the checks
# over all three) in `make test-long`, which keeps `make test` inside its ten minutes on two cores.
SEED0_HERE_REST_LONG = (0, *(pytest.param(seed, marks=pytest.mark.long) for seed in SEEDS[1:]))


def training_run(name: str, seed: int, profile_name: str = "cpu"):
    """(metrics, run, history) of recipe ``name`` trained in ``profile_name`` with ``seed``, once
    per process; ``history.evals`` is the validation curve (the long tier checks plateaus on it).

    One training run is at most one test's work (each test names its seed), so no test waits for
    three; the tests that compare splits or models reuse what the others trained. The cache key is
    always (name, seed, profile_name), however the caller spells the call: ``functools.cache`` alone
    keys on the arguments as given, so ``training_run(x, 0)`` and ``trained(x, 0)`` trained twice.
    """
    return _cached_run(name, int(seed), profile_name)


@functools.cache
def _cached_run(name: str, seed: int, profile_name: str):
    return recipes.train_recipe(name, profile_name=profile_name, seed=seed, progress=False)


def trained(name: str, seed: int, profile_name: str = "cpu"):
    """(metrics, run) of ``training_run(name, seed, profile_name)``."""
    metrics, run, _ = training_run(name, seed, profile_name)
    return metrics, run


def late_change(history, metric: str, steps_back: int) -> float:
    """How much validation ``metric`` moved over the last ``steps_back`` steps of a run: the last
    evaluation minus the one ``steps_back`` steps before it (near 0: the run has plateaued)."""
    curve = {e["step"]: e[metric] for e in history.evals}
    last = max(curve)
    if last - steps_back not in curve:
        raise ValueError(f"no evaluation at step {last - steps_back}; evaluated at {sorted(curve)}")
    return curve[last] - curve[last - steps_back]
