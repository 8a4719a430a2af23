"""Root pytest plugin: notebooks run in the ``smoke`` profile, whatever the machine.

pytest loads this file for every run from the repository (``make test``, CI, and also
``pytest notebooks/00_welcome_and_setup.ipynb``), whether or not ``tests/conftest.py`` is loaded.

Every notebook sizes its runs from ``attnflex_lab.profile()``, which reads ``ATTNFLEX_PROFILE``
and, when that is unset, picks ``gpu`` with CUDA and ``cpu`` elsewhere. Left alone, a test run on a
laptop would train the ``cpu``-sized models (minutes per notebook), and a learner's
``ATTNFLEX_PROFILE=gpu`` would leak into the tests. So the notebook kernels get
``ATTNFLEX_PROFILE=smoke`` unless the caller opts in to another profile explicitly:

    pytest notebooks --notebook-profile=cpu             # or
    ATTNFLEX_NOTEBOOK_PROFILE=cpu pytest notebooks      # or
    make test-notebooks PROFILE=cpu

The pin is set only while a notebook cell runs (nbval starts one kernel per notebook, in the set-up
of its first cell, and the kernel inherits this process's environment then); it is restored right
after, so the other tests still see the caller's ``ATTNFLEX_PROFILE``.

A smoke kernel also gets ``OMP_NUM_THREADS=1`` unless the caller set it. Smoke sizes are so small
that a thread pool costs more than it gives, and on a busy two-core machine it costs a lot: 20 smoke
steps of lesson 06's language model took 9 s with two threads and 0.1 s with one.
"""

from __future__ import annotations

import os

import pytest

from attnflex_lab.profiles import PROFILE_ENV, PROFILES

NOTEBOOK_PROFILE_ENV = "ATTNFLEX_NOTEBOOK_PROFILE"
THREADS_ENV = "OMP_NUM_THREADS"
DEFAULT_NOTEBOOK_PROFILE = "smoke"
_KEY = pytest.StashKey[str]()


def pytest_addoption(parser):
    parser.addoption(
        "--notebook-profile", default=None, choices=PROFILES,
        help=f"profile the notebooks run in (default {DEFAULT_NOTEBOOK_PROFILE}, or ${NOTEBOOK_PROFILE_ENV}); "
             f"{PROFILE_ENV} does not change it",
    )


def notebook_profile(option: str | None, environ=os.environ) -> str:
    """The notebooks' profile: the option, else $ATTNFLEX_NOTEBOOK_PROFILE, else smoke."""
    if option is not None:
        return option
    raw = environ.get(NOTEBOOK_PROFILE_ENV, "")
    value = raw.strip().lower()
    if not value:
        return DEFAULT_NOTEBOOK_PROFILE
    if value not in PROFILES:
        raise pytest.UsageError(
            f"{NOTEBOOK_PROFILE_ENV}={raw!r} is not a profile; use one of {', '.join(PROFILES)} "
            f"(or unset it to run the notebooks in {DEFAULT_NOTEBOOK_PROFILE})"
        )
    return value


def pytest_configure(config):
    config.stash[_KEY] = notebook_profile(config.getoption("--notebook-profile"))
    # exercise checks record progress: tests and notebook kernels write a throwaway file, never the learner's
    import tempfile

    os.environ["ATTNFLEX_PROGRESS"] = os.path.join(tempfile.mkdtemp(prefix="attnflex-progress-"), "progress.json")


def pytest_report_header(config):
    chosen = config.stash[_KEY]
    how = "pinned" if chosen == DEFAULT_NOTEBOOK_PROFILE else "opted in"
    return f"attnflex-lab: notebooks run in the {chosen!r} profile ({how}; --notebook-profile to change)"


def _is_notebook(item) -> bool:
    return item.path.suffix == ".ipynb"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """While a notebook cell runs, pin the profile (and threads) for the kernel it may start.

    The first cell's set-up starts the kernel; nbval also restarts it after a cell times out.
    """
    if not _is_notebook(item):
        yield
        return
    chosen = item.config.stash[_KEY]
    pinned = {PROFILE_ENV: chosen}
    if chosen == "smoke" and not os.environ.get(THREADS_ENV):
        pinned[THREADS_ENV] = "1"
    before = {name: os.environ.get(name) for name in pinned}
    os.environ.update(pinned)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, with the reason shown, where torch sees no CUDA GPU."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (make test-gpu runs it where one is lent)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
