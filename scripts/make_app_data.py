"""Regenerate the two small data sets lesson 11 bundles in attnflex_lab/data/ (cards in data/README.md).

    python scripts/make_app_data.py            # writes attnflex_lab/data/co2_monthly.csv and python_errors.csv

- ``co2_monthly.csv``: the Mauna Loa CO2 record that statsmodels carries (``statsmodels.datasets.co2``,
  weekly, 1958-2001, public domain), averaged per calendar month; the 5 months with no weekly
  reading are filled by linear interpolation between their neighbours (flagged in a column).
- ``python_errors.csv``: the messages of ``raise TypeError("...")`` and ``raise ValueError("...")``
  statements in the Python standard library of the interpreter that runs this script (PSF licence),
  read with ``ast`` (nothing is imported or executed). An f-string's placeholders become ``{}``.
  Exact duplicate messages are kept once (with the label seen first, in sorted file order);
  a message seen with both labels is dropped.

Needs statsmodels (only this script; the lab reads the CSVs). Output is deterministic for a given
statsmodels version and Python version.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("TypeError", "ValueError")


def make_co2(path: Path) -> None:
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"]                       # ppm, weekly (Saturdays), NaN gaps
    monthly = weekly.resample("MS").mean()                        # month start -> mean of its weeks
    filled = monthly.isna()
    monthly = monthly.interpolate(method="linear")
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["month", "co2_ppm", "interpolated"])
        for stamp, value in monthly.items():
            writer.writerow([stamp.strftime("%Y-%m"), f"{value:.3f}", int(filled[stamp])])


def _message(node: ast.expr) -> str | None:
    """The text of a str constant or an f-string (placeholders -> '{}'); None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _raised(tree: ast.AST):
    """(label, message) for each ``raise TypeError(<str>)`` / ``raise ValueError(<str>)``;
    also ``"..." % x`` and ``"...".format(x)`` (their template string, placeholders kept as written)."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
            continue
        func = node.exc.func
        if not (isinstance(func, ast.Name) and func.id in LABELS and node.exc.args):
            continue
        arg = node.exc.args[0]
        if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod):
            arg = arg.left
        elif (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
              and arg.func.attr == "format"):
            arg = arg.func.value
        text = _message(arg)
        if text is not None:
            text = " ".join(text.split())
            if len(text.split()) >= 2:                                # one word says nothing
                yield func.id, text


def make_errors(path: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.rglob("*.py")
                   if not ({"test", "tests", "idle_test", "site-packages"} & set(p.relative_to(stdlib).parts)))
    first: dict[str, tuple[str, str]] = {}
    both: set[str] = set()
    for file in files:
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue                                                  # a few lib2to3 fixtures
        for label, text in _raised(tree):
            if text in first and first[text][0] != label:
                both.add(text)
            first.setdefault(text, (label, str(file.relative_to(stdlib))))
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "label", "module"])
        for text, (label, module) in first.items():
            if text not in both:
                writer.writerow([text, label, module])


def main() -> None:
    data = ROOT / "attnflex_lab" / "data"
    make_co2(data / "co2_monthly.csv")
    make_errors(data / "python_errors.csv")
    print(f"python {sys.version.split()[0]}")
    for name in ("co2_monthly.csv", "python_errors.csv"):
        blob = (data / name).read_bytes()
        print(f"{name}: {len(blob.splitlines()) - 1} rows, sha256 {hashlib.sha256(blob).hexdigest()}")


if __name__ == "__main__":
    main()
