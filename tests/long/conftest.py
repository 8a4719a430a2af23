"""The full-scale tier: every test collected under ``tests/long`` carries the ``long`` marker.

``make test`` deselects ``long`` (pyproject's addopts), so a file here never runs in CI by
accident, even if it forgets ``pytest.mark.long``; ``make test-long`` selects exactly these tests.
See README.md in this folder for what belongs here.

``make test-long`` spreads the tests over two workers with ``--dist loadgroup``: each file is one
group (its tests share the runs it caches), except the files in ``PER_TEST_GROUPS``, whose tests each
train their own models and may run on either worker, so that no worker is left with two heavy files.
"""

from pathlib import Path

import pytest

_HERE = Path(__file__).parent
PER_TEST_GROUPS = {"test_long_lesson12.py"}   # one (profile, seed) per test, nothing shared between them


@pytest.hookimpl(tryfirst=True)   # before the mark plugin deselects `-m 'not long'`
def pytest_collection_modifyitems(items):
    for item in items:
        path = Path(item.fspath)
        if _HERE in path.parents:
            item.add_marker(pytest.mark.long)
            group = item.nodeid if path.name in PER_TEST_GROUPS else path.name
            item.add_marker(pytest.mark.xdist_group(name=group))
