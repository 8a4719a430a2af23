"""One set of symbols across the lab: the notation appendix, the aliases it retired, and one sense per
symbol within each lesson.

The appendix ``notebooks/notation.md`` holds the table every lesson follows (lesson 00 links it).
These tests read that table, check that it gives each
symbol one meaning, and check that the aliases the lessons used to mix in (FlashAttention's S, L, D,
Bahdanau's e_tj and s_{t-1}, the plain L for the loss, D_h, d_model in formulas...) appear neither in
any lesson's text and code comments nor in the docstrings and comments of the hand-derived ops.

A lesson may still *name* another convention once, to say what it means here ("the FlashAttention
paper calls the scores S"): a paragraph that says who writes or calls a symbol that way (a paper, or
"et al.") is exempt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TABLE_PAGE = ROOT / "notebooks" / "notation.md"
PACKAGE_FILES = [ROOT / "attnflex_lab" / name for name in ("ops.py", "functional.py", "kernels/flash.py")]

# Retired alias (a regex over math, text or comments) -> (the table's symbol that replaced it, why).
RETIRED = {
    r"(?<![\w\\])dS(?![\w])": ("Z", "dS: the score gradient is dZ (S counts keys)"),
    r"(?<![\w\\])S_\{?(ij|IJ)\b": ("Z", "S_ij: a score is z_ij, a score tile Z_IJ (S counts keys)"),
    r"D_\{?h\}?(?![\w])": ("D", "D_h: a head's width is D"),
    r"e_\{?tj\}?": ("z_{ij}", "e_tj: Bahdanau's score is z_tj (e_t are pooled features)"),
    r"s_\{?t-1\}?": ("u_t", "s_{t-1}: the decoder state is u_{t-1} (s is the scale)"),
    r"(?<![\\\w])s_\{?(ij|j|k|t|n,\s*t)\}?(?![\w])": ("z_{ij}", "s_ij: one score is z_ij (s is the scale)"),
    r"\\partial L\b|∂L/": (r"\mathcal{L}", "∂L: the loss is ℒ (L counts layers)"),
    r"\\log Z\b": (r"\operatorname{lse}_i", "log Z: the log-sum-exp is lse (Z is the score matrix)"),
    r"log-sum-exp \$?L\b|(?<![\w])L_\{?[iI]\}?(?![\w])": (r"\operatorname{lse}_i", "L_i: the log-sum-exp is lse_i"),
    r"\bD_\{?[iI]\}?(?![\w])|\bD = \\?(operatorname\{)?rowsum": (r"\rho_i", "D_i: the row term is ρ_i (D is a width)"),
}
# Aliases retired inside formulas only (in prose or code, `d_model` is the configs' field name).
RETIRED_IN_MATH = {
    r"d_\{?\\?(text|mathrm)?\{?model": ("C", "d_model in a formula: the residual width is C"),
}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def notation_table(path: Path = TABLE_PAGE) -> dict[str, str]:
    """The table's rows as {symbol: meaning}, one entry per symbol of the first column."""
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("| $")]
    assert rows, f"{path.name} has no notation table"
    table: dict[str, str] = {}
    for row in rows:
        first, meaning = (part.strip() for part in row.strip("|").split("|")[:2])
        for math in re.findall(r"\$([^$]+)\$", first):
            for symbol in (s.strip() for s in math.split(",")):
                assert symbol not in table, f"the table defines {symbol!r} twice: {table[symbol]!r} and {meaning!r}"
                table[symbol] = meaning
    return table


def _exempt(paragraph: str) -> bool:
    """A paragraph that names another convention on purpose: who writes or calls it so."""
    return bool(re.search(r"\b(write|writes|calls|call)\b", paragraph)
                and re.search(r"et al\.|\bpapers?\b", paragraph))


def _lesson_texts(path: Path):
    """(where, text) for each paragraph of markdown and each code comment of a lesson."""
    for index, cell in enumerate(_cells(path)):
        text = _source(cell)
        if cell["cell_type"] == "markdown":
            for paragraph in re.split(r"\n\s*\n", text):
                if not _exempt(paragraph):
                    yield f"{path.name} cell {index}", paragraph
        elif cell["cell_type"] == "code":
            for line in text.splitlines():
                if "#" in line:
                    yield f"{path.name} cell {index}", line[line.index("#"):]


def _package_texts(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        yield f"attnflex_lab/{path.name}:{number}", line


def find_retired(texts) -> list[str]:
    found = []
    for where, text in texts:
        math = " ".join(re.findall(r"\$\$?([^$]+)\$\$?", text))
        for patterns, searched in ((RETIRED, text), (RETIRED_IN_MATH, math)):
            for pattern, (_, why) in patterns.items():
                match = re.search(pattern, searched)
                if match:
                    found.append(f"{where}: {match.group(0)!r} ({why})")
    return found


def test_the_table_gives_each_symbol_one_meaning_and_holds_the_core_symbols():
    table = notation_table()
    for symbol in ("B", "H", "T", "S", "D", "D_v", "C", "L", "s", "Z", "z_{ij}", "P", "O", "M", r"\mathcal{L}", "dX"):
        assert symbol in table, f"the notation appendix lacks {symbol}"
    assert "count" in table["S"] and "scale" in table["s"], "S counts keys and s is the scale"


def test_every_retired_alias_has_its_replacement_in_the_table():
    table = notation_table()
    retired = {**RETIRED, **RETIRED_IN_MATH}
    missing = {why: replacement for replacement, why in retired.values() if replacement not in table}
    assert not missing, f"retired aliases whose replacement is not in the notation appendix: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lessons_use_no_retired_alias(path):
    found = find_retired(_lesson_texts(path))
    assert not found, "symbols the notation appendix retired:\n" + "\n".join(found)


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: p.name)
def test_hand_derived_ops_use_no_retired_alias(path):
    found = find_retired(_package_texts(path))
    assert not found, "symbols the notation appendix retired:\n" + "\n".join(found)


def test_the_checks_catch_a_planted_alias_and_spare_a_named_convention():
    planted = [("x", r"dQ = s\,dS\,K"), ("x", r"width $D_h = C/H$"), ("x", r"$P_{ij} = e^{S_{ij} - L_i}$"),
               ("x", r"$e_{tj} = v_a^\top \tanh(W_q s_{t-1} + W_k h_j)$"), ("x", r"$dX = \partial L/\partial X$"),
               ("x", r"width $d_{\text{model}}$"), ("x", r"$\log Z = \log \sum_j e^{z_j}$")]
    for where, text in planted:
        assert find_retired([(where, text)]), f"the checks miss a planted alias in {text!r}"
    assert _exempt("The FlashAttention paper calls the scores $S$; here they are $Z$.")
    assert not _exempt("$dS = P \\odot (dP - D)$")


# --- one sense per symbol within a lesson ------------------------------------------------------------
# The table's single capital letters that name a *matrix* or a tensor, not a size: a lesson that binds
# one of them to a count in code, or calls it a permutation, world size, ... in prose, gives it a
# second sense (01 once had P = len(padded), 05 a permutation P, 06 W for the world size).
OWNED = ("00", "01", "02", "03", "04", "05", "06")   # TODO(issue 22): lessons 07-12 join as their owners clean them
COUNT_BINDING = re.compile(r"^\s*([A-Z])\s*=\s*(len\(|int\(|\d+\s*(#|$)|[a-z_.]*(world_size|size|count)\b)", re.M)
OTHER_SENSE = re.compile(r"\$([A-Z])\$,? (?:is |for |as )?(?:the |a )?(permutation|world size|number of|count of|rank)")


def matrix_letters(table: dict[str, str]) -> set[str]:
    """Single capital letters the table gives a tensor meaning (not 'number of', 'width', 'size'), less
    those its code column names for a size (`V` for the vocabulary size)."""
    size_rows = [line for line in TABLE_PAGE.read_text(encoding="utf-8").splitlines()
                 if line.startswith("| $") and re.match(r"\|[^|]*\|\s*(number|width|batch|vocabulary)", line)]
    size_code_names = {name for line in size_rows for name in re.findall(r"`([A-Z])`", line.split("|")[3])}
    return {sym for sym, meaning in table.items() if re.fullmatch(r"[A-Z]", sym)
            and not re.match(r"(number|width|batch|vocabulary)", meaning)} - size_code_names


def second_senses(path: Path, letters: set[str]) -> list[str]:
    found = []
    for index, cell in enumerate(_cells(path)):
        text = _source(cell)
        if cell["cell_type"] == "code":
            found += [f"{path.name} cell {index}: {m.group(1)} bound to a count ({m.group(0).strip()!r})"
                      for m in COUNT_BINDING.finditer(text) if m.group(1) in letters]
        else:
            found += [f"{path.name} cell {index}: ${m.group(1)}$ used for a {m.group(2)}"
                      for m in OTHER_SENSE.finditer(text) if m.group(1) in letters]
    return found


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name[:2] in OWNED], ids=lambda p: p.stem)
def test_each_lesson_uses_a_symbol_in_one_sense(path):
    found = second_senses(path, matrix_letters(notation_table()))
    assert not found, "a symbol the table reserves for a matrix used in another sense:\n" + "\n".join(found)


def test_the_sense_check_catches_planted_clashes(tmp_path):
    letters = matrix_letters(notation_table())
    assert {"P", "Q", "K", "Z", "O"} <= letters and not {"B", "T", "S", "C", "L", "V"} & letters
    planted = tmp_path / "99_x.ipynb"
    planted.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": "P = len(padded)\n"},
        {"cell_type": "markdown", "source": "shuffle with $P$ a permutation of the rows"},
        {"cell_type": "markdown", "source": "$W$ is the world size"},
        {"cell_type": "code", "source": "T = len(tokens)\n"}]}))
    found = second_senses(planted, letters | {"W"})
    assert len(found) == 3 and not any(": T " in f for f in found), found
