"""The package's import graph has no circle, and no module reaches for another module's private names.

Only imports that run when a module is imported count (module level, outside ``if TYPE_CHECKING``);
an import inside a function runs later and cannot deadlock the import of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "attnflex_lab"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_statements(tree: ast.Module):
    """Import statements that run at import time: module level, also inside try/if (not TYPE_CHECKING)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                stack.extend(handler.body)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports at import time."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        for node in _import_time_statements(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                target = _resolve(name, path.name == "__init__.py", node)
                # `from . import x` imports the submodule x when x is a module
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target
                           for a in node.names]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_cycle_sees_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_circle():
    graph = import_graph(_modules())
    assert graph[f"{PACKAGE}.training.train"] >= {f"{PACKAGE}.training.loop", f"{PACKAGE}.training.config"}
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_training_config_is_a_leaf():
    graph = import_graph(_modules())
    engine = {m for m in graph if m.startswith(f"{PACKAGE}.")}
    assert not graph[f"{PACKAGE}.training.config"] & engine


def _private_imports(modules: dict[str, Path]) -> list[str]:
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                if node.level == 0 and not target.startswith(PACKAGE):
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{name} imports {target}.{alias.name}")
    return found


@pytest.mark.parametrize("planted", ["from .perf import _sync\n", "from ..models.transformer import _init\n"])
def test_private_import_check_sees_a_planted_one(tmp_path, planted):
    pkg = tmp_path / PACKAGE / "sub"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text(planted)
    name = f"{PACKAGE}.sub.mod"
    assert _private_imports({name: pkg / "mod.py"})


def test_no_module_imports_another_modules_private_names():
    assert _private_imports(_modules()) == []


# --- the floors of the regrouped package (issue 19 §4) ---------------------------------------------

MODEL_CODE = ("models", "training", "recipes", "adapt", "elasticity", "serve", "tasks")


def _floor_violations(graph: dict[str, set[str]], folder: str, forbidden: tuple[str, ...]) -> list[str]:
    """Import-time edges from PACKAGE.folder.* into any PACKAGE.<forbidden>.* module."""
    prefix = f"{PACKAGE}.{folder}"
    bad = []
    for module, targets in graph.items():
        if module == prefix or module.startswith(prefix + "."):
            for target in targets:
                top = target.split(".")[1] if target.count(".") >= 1 else ""
                if top in forbidden:
                    bad.append(f"{module} imports {target}")
    return sorted(bad)


def test_viz_draws_arrays_and_imports_no_model_code():
    # viz may call analysis' array math (rollout); analysis never imports viz (below), so no circle
    assert _floor_violations(import_graph(_modules()), "viz", MODEL_CODE) == []


def test_analysis_imports_no_viz():
    assert _floor_violations(import_graph(_modules()), "analysis", ("viz",)) == []


def test_kernels_import_no_model_code():
    assert _floor_violations(import_graph(_modules()), "kernels", MODEL_CODE + ("viz",)) == []


def test_floor_check_sees_a_planted_edge():
    graph = {f"{PACKAGE}.viz.x": {f"{PACKAGE}.models.vit"}, f"{PACKAGE}.analysis.y": {f"{PACKAGE}.viz.x"}}
    assert _floor_violations(graph, "viz", MODEL_CODE) == [f"{PACKAGE}.viz.x imports {PACKAGE}.models.vit"]
    assert _floor_violations(graph, "analysis", ("viz",)) == [f"{PACKAGE}.analysis.y imports {PACKAGE}.viz.x"]


def _imports_of_old_names(paths) -> list[str]:
    """Imports that name a module by its pre-regroup flat name (attnflex_lab.flash, `from .. import explain`)."""
    from attnflex_lab._moved import MOVED

    found = []
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                if len(parts) >= 2 and parts[0] == PACKAGE and parts[1] in MOVED:
                    found.append(f"{path.name}:{node.lineno} {name}")
    return found


def test_the_lab_itself_uses_the_new_names():
    """Old names stay importable for learners' code, but the package, tests and benchmarks use the new ones."""
    root = ROOT.parent
    paths = [*ROOT.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "benchmarks").glob("*.py")]
    assert _imports_of_old_names(paths) == []


def test_old_names_import_the_moved_module_itself():
    import importlib

    from attnflex_lab._moved import MOVED

    for old, new in MOVED.items():
        alias = importlib.import_module(f"{PACKAGE}.{old}")
        real = importlib.import_module(f"{PACKAGE}.{new}")
        assert alias is real, old
        assert real.__spec__.name == f"{PACKAGE}.{new}"  # the alias did not rename the real module
