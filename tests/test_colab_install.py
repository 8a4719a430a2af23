"""Every notebook installs the lab the way Colab would, never pins torch, and names one repository URL.

The setup cell is run here as Colab runs it: with ``google.colab`` importable and ``subprocess.run``
recorded instead of executed, so the test sees the exact pip command a learner's Colab runs. That
requirement is then resolved by pip itself against this checkout (a file:// path in place of the
git URL, nothing downloaded), as ``make test-compat`` installs it for real.
"""

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

from attnflex_lab import COLAB_URL, REPO_URL

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
INSTALL_CELLS = 2  # the install must happen in the first code cells (parameters, then setup)


def _code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _run_as_colab(cells: list[str], monkeypatch) -> list[list[str]]:
    """Run the first code cells as Colab would; return the commands they hand to subprocess.run."""
    calls = []

    def record(cmd, *args, **kwargs):
        calls.append([str(part) for part in cmd])
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", record)
    monkeypatch.delenv("ATTNFLEX_PROFILE", raising=False)
    namespace = {"__name__": "__colab__"}
    for source in cells[:INSTALL_CELLS]:
        exec(compile(source, "<setup cell>", "exec"), namespace)  # noqa: S102  (our own notebook cells)
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_first_cells_pip_install_the_lab_from_the_repository_url(path, monkeypatch, capsys):
    calls = _run_as_colab(_code_cells(path), monkeypatch)
    pip_calls = [c for c in calls if c[1:4] == ["-m", "pip", "install"]]
    assert len(pip_calls) == 1, f"{path.name}: the first {INSTALL_CELLS} code cells must run one pip install " \
                                f"in Colab, ran {calls}"
    cmd = pip_calls[0]
    assert cmd[0] == sys.executable, f"{path.name}: pip must be the kernel's own ({cmd[0]})"
    packages = [arg for arg in cmd[4:] if not arg.startswith("-")]
    assert packages == [f"{PYPROJECT['project']['name']} @ git+{REPO_URL}"], \
        f"{path.name}: installs {packages}, not the lab from REPO_URL"
    assert not [arg for arg in cmd if "torch" in arg], f"{path.name}: the install names torch: {cmd}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_cell_installs_or_pins_torch(path):
    for source in _code_cells(path):
        for line in source.splitlines():
            if re.search(r"pip\b.*\binstall\b|\"install\"", line):
                assert "torch" not in line, f"{path.name}: a cell installs torch itself: {line.strip()}"


def test_the_lab_requires_torch_with_a_lower_bound_only():
    torch_reqs = [r for r in PYPROJECT["project"]["dependencies"] if re.match(r"torch\b", r)]
    assert len(torch_reqs) == 1 and re.fullmatch(r"torch>=[\d.]+", torch_reqs[0]), \
        f"torch must be required as 'torch>=X' only (Colab keeps its own build), got {torch_reqs}"


@pytest.mark.slow
def test_pip_resolves_the_colab_requirement_against_this_checkout(tmp_path):
    pytest.importorskip("setuptools")  # the build backend, used without network (no build isolation)
    spec = f"{PYPROJECT['project']['name']} @ file://{ROOT}"  # the Colab cell's line, a path for the URL
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
                           "--no-build-isolation", "--quiet", "--report", str(report), spec],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (item,) = json.loads(report.read_text())["install"]
    metadata = item["metadata"]
    assert metadata["name"] == "attnflex-lab"
    torch_reqs = [r for r in metadata["requires_dist"] if re.match(r"torch\b", r)]
    assert len(torch_reqs) == 1 and ">=" in torch_reqs[0] and "==" not in torch_reqs[0] \
        and "<" not in torch_reqs[0], f"the built package pins torch: {torch_reqs}"


def test_the_repository_url_is_one_constant():
    owner_repo = REPO_URL.removeprefix("https://github.com/")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", owner_repo), f"REPO_URL is not a GitHub URL: {REPO_URL}"
    assert COLAB_URL == f"https://colab.research.google.com/github/{owner_repo}/blob/main"
    texts = {p.name: p.read_text() for p in [ROOT / "README.md", *NOTEBOOKS]}
    name = PYPROJECT["project"]["name"]
    for where, text in texts.items():
        for url in re.findall(r"github\.com/[\w.-]+/[\w.-]+", text):
            if name in url:  # a link to this lab (not to nbval or a paper's code)
                assert url == f"github.com/{owner_repo}", f"{where} links to {url}, not REPO_URL {REPO_URL}"
        for url in re.findall(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+", text):
            assert url == COLAB_URL, f"{where} opens {url} in Colab, not COLAB_URL {COLAB_URL}"
        for match in re.findall(r'REPO_URL = "([^"]*)"', text):
            assert match == REPO_URL, f"{where} defines REPO_URL = {match!r}"
    for urls in PYPROJECT["project"].get("urls", {}).values():
        assert owner_repo in urls, f"pyproject's [project.urls] point elsewhere: {urls}"
