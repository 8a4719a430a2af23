"""What the learning tests share: recipes trained once per test process in the cpu profile.

The full-scale tier (tests/long, ``make test-long``) trains the same recipes in the gpu profile
with ``trained(name, seed, profile_name="gpu")``.

Each learning-test file trains only what it checks, so pytest-xdist (one file per worker) can run
two files at once; a test that compares seeds or models reuses the runs the tests before it made.
"""

import functools

from attnflex_lab import recipes

SEEDS = (0, 1, 2)


@functools.cache
def trained(name: str, seed: int, profile_name: str = "cpu"):
    """(metrics, run) of recipe ``name`` trained in ``profile_name`` with ``seed``, once per process.

    One training run is at most one test's work (each test names its seed), so no test waits for
    three; the tests that compare splits or models reuse what the others trained.
    """
    metrics, run, _ = recipes.train_recipe(name, profile_name=profile_name, seed=seed, progress=False)
    return metrics, run
