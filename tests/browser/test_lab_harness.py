"""The harness itself: a notebook whose cell raises is reported with its traceback, not passed."""

import nbformat
import pytest

from .lab import open_and_run_all


def test_a_raising_cell_fails_the_run(page, lab_server):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0"),
                nbformat.v4.new_code_cell("y = 2")]
    nbformat.write(nb, lab_server.root / "zz_raises.ipynb")
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        open_and_run_all(page, lab_server, "zz_raises.ipynb", timeout_s=60)
