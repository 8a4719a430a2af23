"""The full-scale tier: every test collected under ``tests/long`` carries the ``long`` marker.

``make test`` deselects ``long`` (pyproject's addopts), so a file here never runs in CI by
accident, even if it forgets ``pytest.mark.long``; ``make test-long`` selects exactly these tests.
See README.md in this folder for what belongs here.
"""

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)   # before the mark plugin deselects `-m 'not long'`
def pytest_collection_modifyitems(items):
    for item in items:
        if _HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.long)
