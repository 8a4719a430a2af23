"""Old flat module names, kept importable after the package was regrouped into folders.

Until the regroup (issue 19) every module sat at the top level: ``attnflex_lab.flash``,
``attnflex_lab.explain`` and so on. Learners' notebooks, saved scripts and older lessons import them
by those names, so each old name below still imports the module where it lives now; the two names
are the same module object, so patching one patches the other. New code uses the new names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old name (under attnflex_lab) -> where the module lives now
MOVED = {
    "flash": "kernels.flash",
    "efficient": "kernels.efficient",
    "kv_cache": "kernels.kv_cache",
    "memory": "kernels.memory",
    "explain": "analysis.explain",
    "interp": "analysis.interp",
    "robustness": "analysis.robustness",
    "rollout": "analysis.rollout",
    "controls": "analysis.controls",
    "amp": "perf.amp",
    "bench": "perf.bench",
    "shipping": "serve.shipping",
    "flash_viz": "viz.flash_tiles",
    "cli_train": "training.cli",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        module = importlib.import_module(self.target)  # the real module, under its new name too
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module):
        # Already executed under its new name; the import system has just stamped the old name's
        # spec on it, so give it back its own (reload, pickling and tracebacks use the real one).
        module.__spec__ = self.real_spec


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds ``attnflex_lab.<old>`` for the names in MOVED, and nothing else."""

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        head, _, old = fullname.rpartition(".")
        if head != self.package or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"{self.package}.{MOVED[old]}"))


def install(package: str) -> None:
    """Put the finder on sys.meta_path once (importing the package twice adds nothing)."""
    if not any(isinstance(f, MovedModuleFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder(package))
