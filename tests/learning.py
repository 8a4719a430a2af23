"""What the learning tests share: recipes trained once per test process in the cpu profile.

Each learning-test file trains only what it checks, so pytest-xdist (one file per worker) can run
two files at once; a test that compares seeds or models reuses the runs the tests before it made.
"""

import functools

from attnflex_lab import recipes

SEEDS = (0, 1, 2)


@functools.cache
def trained(name: str, seed: int):
    """(metrics, run) of recipe ``name`` trained in the cpu profile with ``seed``, once per process.

    One training run is at most one test's work (each test names its seed), so no test waits for
    three; the tests that compare splits or models reuse what the others trained.
    """
    metrics, run, _ = recipes.train_recipe(name, profile_name="cpu", seed=seed, progress=False)
    return metrics, run
