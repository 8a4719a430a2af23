"""Finite differences and readable gradient reports.

``check_gradients(fn, *inputs)`` runs ``fn`` forward, draws a **random** upstream gradient g for
every floating-point output and compares the analytic gradient of L = Σ ⟨g, fn(inputs)⟩ (autograd
through ``fn``, which may call an op with a hand-written backward) with central finite differences
of the same L. A random g matters: with g = 1 (a ``.sum()``), the gradient of a softmax is exactly
zero, so a wrong backward that also returns zero would pass.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _is_differentiable(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def _weighted_sum(outputs, upstream) -> torch.Tensor:
    """L = Σ_k ⟨g_k, y_k⟩ over the float outputs y_k: the scalar both methods differentiate."""
    total = 0.0
    for y, g in zip(_as_tuple(outputs), upstream, strict=True):
        if g is not None:
            total = total + (y * g).sum()
    return total


def numerical_gradient(fn: Callable, inputs: Sequence, upstream: Sequence, eps: float = 1e-6
                       ) -> tuple[torch.Tensor | None, ...]:
    """Central differences of ℒ = Σ_k ⟨upstream_k, fn(*inputs)_k⟩ for every floating-point input.

    ∂ℒ/∂x_i ≈ (ℒ(x + ε e_i) − ℒ(x − ε e_i)) / 2ε, one pair of forward passes per entry; the
    truncation error is O(ε²). Returns one tensor per input (None for non-float inputs).
    ``upstream`` holds one tensor (or None) per output of ``fn``, each of that output's shape.
    """
    if upstream is None:
        raise TypeError("numerical_gradient needs the upstream gradients (one per output of fn)")
    # Contiguous copies, so that view(-1) below can write one entry at a time.
    inputs = [x.detach().clone(memory_format=torch.contiguous_format) if _is_differentiable(x)
              else x for x in inputs]
    grads: list[torch.Tensor | None] = []
    with torch.no_grad():
        upstream = _make_upstream(_as_tuple(fn(*inputs)), upstream, seed=0)  # checks count, shapes
        for x in inputs:
            if not _is_differentiable(x):
                grads.append(None)
                continue
            grad = torch.zeros_like(x)
            flat_x, flat_grad = x.view(-1), grad.view(-1)   # views: writing them edits x and grad
            for i in range(flat_x.numel()):
                original = flat_x[i].item()
                flat_x[i] = original + eps
                plus = float(_weighted_sum(fn(*inputs), upstream))
                flat_x[i] = original - eps
                minus = float(_weighted_sum(fn(*inputs), upstream))
                flat_x[i] = original
                flat_grad[i] = (plus - minus) / (2 * eps)
            grads.append(grad)
    return tuple(grads)


@dataclass
class InputError:
    name: str                  # the input's name (argument name, or "input i")
    shape: tuple[int, ...]
    max_abs_error: float       # max |analytic − numerical|
    max_rel_error: float       # max |analytic − numerical| / max |numerical| (error vs scale)
    ok: bool                   # every entry within atol + rtol·|numerical|


@dataclass
class GradientReport:
    rows: list[InputError]
    atol: float
    rtol: float
    eps: float

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def __bool__(self) -> bool:  # `assert report` reads naturally
        return self.ok

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "MISMATCH"
        lines = [f"gradient check: {verdict} (atol={self.atol:g}, rtol={self.rtol:g}, "
                 f"eps={self.eps:g})",
                 f"{'input':<12} {'shape':<16} {'max abs err':>12} {'max rel err':>12}  ok"]
        for r in self.rows:
            lines.append(f"{r.name:<12} {str(r.shape):<16} {r.max_abs_error:>12.3e} "
                         f"{r.max_rel_error:>12.3e}  {'yes' if r.ok else 'NO'}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#cf222e"
        head = ("<tr><th>input</th><th>shape</th><th>max abs err</th><th>max rel err</th>"
                "<th>ok</th></tr>")
        body = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{r.shape}</td>"
            f"<td>{r.max_abs_error:.3e}</td><td>{r.max_rel_error:.3e}</td>"
            f"<td style='color:{'#1a7f37' if r.ok else '#cf222e'}'>{'yes' if r.ok else 'NO'}</td>"
            f"</tr>" for r in self.rows)
        caption = (f"<caption style='color:{color}'><b>gradient check: "
                   f"{'OK' if self.ok else 'MISMATCH'}</b> (atol={self.atol:g}, "
                   f"rtol={self.rtol:g}, eps={self.eps:g})</caption>")
        return f"<table>{caption}{head}{body}</table>"


def _compare(name: str, analytic: torch.Tensor, numerical: torch.Tensor, atol: float,
             rtol: float) -> InputError:
    err = (analytic - numerical).abs()
    scale = numerical.abs().max().item() if numerical.numel() else 0.0
    max_abs = err.max().item() if err.numel() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    ok = bool((err <= atol + rtol * numerical.abs()).all())
    return InputError(name, tuple(analytic.shape), max_abs, max_rel, ok)


def check_gradients(fn: Callable, *inputs, upstream=None, seed: int = 0, atol: float = 1e-7,
                    rtol: float = 1e-5, eps: float = 1e-6, names: Sequence[str] | None = None,
                    dtype: torch.dtype | None = torch.float64) -> GradientReport:
    """Compare autograd's gradient through ``fn`` with central finite differences.

    fn:       called as ``fn(*inputs)``; returns a tensor or a tuple of tensors.
    inputs:   floating-point tensors are differentiated (cast to ``dtype``, float64 by default:
              finite differences in float32 are too coarse); anything else (masks, scales) is
              passed through unchanged.
    upstream: the gradient g for each output (a tensor or a tuple); None draws a random normal g
              from ``seed``. Pass ``torch.ones_like(out)`` to see why ``.sum()`` proves nothing.
    names:    one label per input for the report (default "input 0", "input 1", ...).
    """
    if names is not None and len(names) != len(inputs):
        raise ValueError(f"got {len(names)} names for {len(inputs)} inputs")
    names = list(names) if names is not None else [f"input {i}" for i in range(len(inputs))]
    prepared = [(x.detach().to(dtype) if dtype is not None else x.detach()).requires_grad_()
                if _is_differentiable(x) else x for x in inputs]
    if not any(_is_differentiable(x) for x in prepared):
        raise ValueError("check_gradients needs at least one floating-point tensor input")
    outputs = _as_tuple(fn(*prepared))
    upstream = _make_upstream(outputs, upstream, seed)

    wrt = [x for x in prepared if _is_differentiable(x)]
    analytic = torch.autograd.grad(_weighted_sum(outputs, upstream), wrt, allow_unused=True)
    numerical = [g for g in numerical_gradient(fn, prepared, upstream, eps) if g is not None]
    rows = []
    diff_names = [n for n, x in zip(names, prepared, strict=True) if _is_differentiable(x)]
    for name, x, ana, num in zip(diff_names, wrt, analytic, numerical, strict=True):
        ana = torch.zeros_like(x) if ana is None else ana
        rows.append(_compare(name, ana.detach(), num, atol, rtol))
    return GradientReport(rows, atol, rtol, eps)


def _make_upstream(outputs: tuple, upstream, seed: int) -> list[torch.Tensor | None]:
    """One upstream gradient per output: given, or drawn from N(0, 1) with ``seed``."""
    if upstream is not None:
        given = _as_tuple(upstream)
        if len(given) != len(outputs):
            raise ValueError(f"fn returned {len(outputs)} outputs but {len(given)} upstream "
                             f"gradients were given")
        result = []
        for i, (y, g) in enumerate(zip(outputs, given, strict=True)):
            if g is not None and tuple(g.shape) != tuple(y.shape):
                raise ValueError(f"upstream gradient {i} has shape {tuple(g.shape)}, but output "
                                 f"{i} has shape {tuple(y.shape)}")
            result.append(None if g is None else g.to(y.dtype))
        return result
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
            if _is_differentiable(y) else None for y in outputs]


__all__ = ["GradientReport", "InputError", "check_gradients", "numerical_gradient"]
