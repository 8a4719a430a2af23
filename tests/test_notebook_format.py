"""Every lesson notebook follows the template: numbered, stripped, titled, badged, set up for Colab."""

import json
import re
from pathlib import Path

import pytest

from attnflex_lab import COLAB_URL, REPO_URL

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


# A lesson split into sittings keeps its number; its parts sort in reading order (issue 22).
SPLIT_LESSONS = {"05": ["05_building_a_transformer.ipynb", "05_using_a_transformer.ipynb"],
                 "07": ["07_flash_attention.ipynb", "07_kernels_and_variants.ipynb"],
                 "08": ["08_attention_elasticity_by_training.ipynb", "08_attention_elasticity_in_context.ipynb"]}


def test_numbers_are_unique_and_start_at_00():
    for number, parts in SPLIT_LESSONS.items():
        assert [p.name for p in NOTEBOOKS if p.name[:2] == number] == parts, f"lesson {number}'s parts"
    numbers = [p.name[:2] for p in NOTEBOOKS if p.name not in sum(SPLIT_LESSONS.values(), [])[1:]]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"
    assert numbers[0] == "00"


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, json.loads(request.param.read_text())


def _source(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_named_NN_snake_case(notebook):
    path, _ = notebook
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name} is not named NN_snake_case.ipynb"


def test_committed_without_outputs(notebook):
    path, nb = notebook
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; run `make strip`"


def test_title_cell_with_badge(notebook):
    path, nb = notebook
    first = nb["cells"][0]
    text = _source(first)
    assert first["cell_type"] == "markdown" and text.startswith(f"# {path.name[:2]} · "), \
        f"{path.name}: the first cell must be a markdown title '# {path.name[:2]} · Title'"
    badge = f"({COLAB_URL}/notebooks/{path.name})"
    assert "colab-badge.svg" in text and badge in text, f"{path.name}: Colab badge must link to {badge}"
    assert "What you will learn" in text and "Prerequisites" in text and "Time to run" in text


def test_parameters_then_setup_cell(notebook):
    path, nb = notebook
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), \
        f"{path.name}: the first code cell must be tagged 'parameters'"
    assert "PROFILE = None" in _source(code[0])
    setup = _source(code[1])
    assert f'REPO_URL = "{REPO_URL}"' in setup, f"{path.name}: setup cell must install from REPO_URL"
    assert '"google.colab" in sys.modules' in setup, f"{path.name}: install only when in Colab"
    assert "import attnflex_lab as afl" in setup
    assert not re.search(r"torch\s*==", setup), f"{path.name}: the setup cell must never pin torch"


def test_imports_no_other_notebook(notebook):
    path, nb = notebook
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = _source(cell)
            assert not re.search(r"^\s*(%run|import\s+\d\d_|from\s+\d\d_)", src, re.M), \
                f"{path.name}: notebooks import only attnflex_lab, never each other"
            assert "import_ipynb" not in src


def test_every_notebook_checks_its_claims(notebook):
    path, nb = notebook
    asserts = sum(_source(c).count("assert ") for c in nb["cells"] if c["cell_type"] == "code")
    assert asserts >= 3, f"{path.name}: only {asserts} assert statements; claims need checks"


def test_every_code_cell_follows_prose(notebook):
    path, nb = notebook
    cells = nb["cells"]
    for i, cell in enumerate(cells[3:], start=3):  # after the title, parameters and setup cells
        if cell["cell_type"] == "code" and cells[i - 1]["cell_type"] == "code":
            # two code cells in a row are fine only when the first is short and says why
            prev = _source(cells[i - 1]).strip().splitlines()
            assert prev and prev[0].lstrip().startswith("#"), \
                f"{path.name}: code cell {i} follows a code cell with no sentence between them"


def test_readme_lists_every_notebook():
    readme = (NOTEBOOK_DIR.parent / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}" in readme, f"README's notebook table lacks {path.name}"
