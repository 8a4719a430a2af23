"""Leak guards: a check runs the learner's function with the package's own answer switched off.

An exercise whose answer the package already implements (``functional.masked_softmax`` for
``01.masked_softmax``, ``ops.AttentionFunction.backward`` for the gradients of lesson 02) would
otherwise pass with a one-line wrapper around that implementation. An ``Exercise`` names what to
switch off, and ``check`` runs the learner's function inside :func:`switched_off`:

- ``guards=("attnflex_lab.functional:masked_softmax", "attnflex_lab.modules:TransformerBlock.forward")``:
  each named function (``module:attribute.path``) raises while the learner's code runs. The function
  object's code is swapped, not the module attribute, so ``from attnflex_lab.functional import
  masked_softmax`` done earlier in the notebook is switched off too. Functions with a closure cannot
  swap code; the module attribute is replaced instead (a name imported earlier then escapes).
- ``no_autograd=True``: the learner's function runs under ``torch.no_grad()``, so an answer that asks
  autograd for the gradient it should derive gets no graph and fails (derivation exercises).

The model answer is computed outside the guard, so it may use anything. To adopt this in another
lesson, add ``guards=``/``no_autograd=`` to its ``Exercise`` and a wrapper around the package's
implementation to ``LEAKS`` in ``tests/test_exercise_leaks.py``: the test then sees the wrapper refused.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import torch

MARKER = "attnflex-lab exercise guard: the package's own implementation is switched off in this check"


def _refuse(*args, **kwargs):
    raise RuntimeError("attnflex-lab exercise guard: the package's own implementation is switched off in this check")


def resolve(spec: str):
    """``"pkg.module:Class.attr"`` -> (the object holding the last attribute, its name, the function)."""
    module_name, _, path = spec.partition(":")
    if not path:
        raise ValueError(f"a guard is 'module:attribute', got {spec!r}")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    target = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
    if isinstance(target, (staticmethod, classmethod)):
        target = target.__func__
    if target is None or not hasattr(target, "__code__"):
        raise ValueError(f"guard {spec!r} does not name a Python function")
    return owner, name, target


@contextlib.contextmanager
def switched_off(guards: tuple[str, ...], no_autograd: bool = False) -> Iterator[None]:
    """Within the block each guarded function raises, and autograd is off if ``no_autograd``."""
    undo = []
    try:
        for spec in guards:
            owner, name, fn = resolve(spec)
            if fn.__closure__ is None:
                undo.append((fn, "__code__", fn.__code__))
                fn.__code__ = _refuse.__code__
            else:
                undo.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else fn))
                setattr(owner, name, _refuse)
        with torch.no_grad() if no_autograd else contextlib.nullcontext():
            yield
    finally:
        for holder, attr, value in reversed(undo):
            setattr(holder, attr, value)


def tripped(error: BaseException) -> str | None:
    """Why ``error`` (or one it was raised from) came from a guard, or None if it did not."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error)
        if MARKER in text:
            return "guard"
        if "does not require grad" in text or "does not have a grad_fn" in text:
            return "autograd"
        error = error.__cause__ or error.__context__
    return None


__all__ = ["MARKER", "resolve", "switched_off", "tripped"]
