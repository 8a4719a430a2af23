"""A lesson per sitting: every lesson's cell count and prose words, printed, and held under the limits.

Prose words count the markdown cells' whitespace-separated tokens (math and links included, as a
reader has to read them). Run with ``-s`` to see the table.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_CELLS, MAX_WORDS = 55, 3_000
# A lesson over the limits is split or trimmed; none is exempt today (add one here only with its reason).
EXEMPT: dict[str, str] = {}


def lesson_size(path: Path) -> tuple[int, int]:
    """(cells, prose words) of a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    words = sum(len(re.findall(r"\S+", "".join(c["source"]))) for c in cells if c["cell_type"] == "markdown")
    return len(cells), words


def test_the_table_of_sizes_is_printed_and_counts_words_and_cells(tmp_path, capsys):
    for path in LESSONS:
        cells, words = lesson_size(path)
        print(f"{path.name:45s} {cells:3d} cells {words:6,d} prose words")
    planted = tmp_path / "99_x.ipynb"
    planted.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["two words\n", "$x$ three"]},
                                             {"cell_type": "code", "source": "not prose at all"}]}))
    assert lesson_size(planted) == (2, 4)
    assert "cells" in capsys.readouterr().out


@pytest.mark.parametrize("path", [p for p in LESSONS if p.name not in EXEMPT], ids=lambda p: p.stem)
def test_a_lesson_fits_one_sitting(path):
    cells, words = lesson_size(path)
    assert cells <= MAX_CELLS and words <= MAX_WORDS, (
        f"{path.name}: {cells} cells and {words:,} prose words; a lesson holds at most {MAX_CELLS} cells "
        f"and {MAX_WORDS:,} words: split it (NN_part_a / NN_part_b, as lesson 05) or trim it")
