"""Helpers for writing lesson notebooks from a script (authoring aid; the .ipynb files are the source).

    from nbbuild import Notebook
    nb = Notebook("03_attention_classifier_on_digits", "An attention classifier on real digits",
                  learn=["...", "..."], prereq=["Lesson 01", "..."], minutes={"smoke": 1, "cpu": 5, "gpu": 3})
    nb.md("## 1. The data\\nSome prose.")
    nb.code("x = ...")
    nb.save()          # writes notebooks/03_attention_classifier_on_digits.ipynb, without outputs

Every notebook gets the same opening: a title cell (title, Colab badge, what you will learn,
prerequisites, time per profile), a `parameters` cell (papermill can override PROFILE and SEED), and
the setup cell (installs the lab on Colab only, never pinning torch; applies PROFILE; imports the lab).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = re.search(r'REPO_URL = "([^"]+)"', (ROOT / "attnflex_lab/_meta.py").read_text()).group(1)
COLAB_URL = re.search(r'COLAB_URL = "([^"]+)"', (ROOT / "attnflex_lab/_meta.py").read_text()).group(1)

PARAMETERS = '''\
# Parameters (papermill may override them). PROFILE = None reads ATTNFLEX_PROFILE:
# "smoke" (the tests), "cpu" (a laptop) or "gpu" (Colab); unset, it is gpu with CUDA, else cpu.
PROFILE = None
SEED = 0'''

SETUP = f'''\
# Setup. On Colab this installs the lab (Colab keeps its own torch: nothing is pinned).
# Elsewhere `make lab` has installed it already.
import os
import sys

REPO_URL = "{REPO_URL}"
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"attnflex-lab @ git+{{REPO_URL}}"], check=True)
if PROFILE is not None:
    os.environ["ATTNFLEX_PROFILE"] = PROFILE

import attnflex_lab as afl

afl.seed_everything(SEED)
print(f"attnflex_lab {{afl.__version__}} | profile: {{afl.profile()}} | device: {{afl.pick_device()}}")'''


class Notebook:
    def __init__(self, stem: str, title: str, *, learn: list[str], prereq: list[str],
                 minutes: dict[str, float]):
        if not re.fullmatch(r"\d\d_[a-z0-9_]+", stem):
            raise ValueError(f"notebook stem must look like NN_snake_case, got {stem!r}")
        self.stem = stem
        self.nb = nbformat.v4.new_notebook()
        self.nb.metadata = {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []},
        }
        badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                 f"({COLAB_URL}/notebooks/{stem}.ipynb)")
        number = stem[:2]
        times = " · ".join(f"`{p}` ≈ {m:g} min" for p, m in minutes.items())
        header = "\n".join([
            f"# {number} · {title}", "", badge, "",
            "**What you will learn**", "", *[f"- {item}" for item in learn], "",
            "**Prerequisites:** " + "; ".join(prereq), "",
            f"**Time to run:** {times}",
        ])
        self.md(header)
        self.code(PARAMETERS, tags=["parameters"])
        self.code(SETUP)

    def md(self, text: str) -> None:
        self.nb.cells.append(nbformat.v4.new_markdown_cell(text.strip("\n")))

    def code(self, source: str, tags: list[str] | None = None) -> None:
        cell = nbformat.v4.new_code_cell(source.strip("\n"))
        if tags:
            cell.metadata["tags"] = list(tags)
        self.nb.cells.append(cell)

    def save(self, directory: Path | None = None) -> Path:
        path = (directory or ROOT / "notebooks") / f"{self.stem}.ipynb"
        for i, cell in enumerate(self.nb.cells):  # stable ids keep diffs small
            cell["id"] = f"{self.stem[:2]}-{i:03d}"
        nbformat.validate(self.nb)
        nbformat.write(self.nb, path)
        return path
