"""Mixed precision, measured: loss curves per precision, fp16 underflow, and the gradient scaler.

- ``train_curve``: ``steps`` optimizer steps of a model in fp32, bf16 or fp16 autocast (fp16 with
  an optional ``torch.amp.GradScaler``), on batches that are a pure function of the step, so two
  precisions see the same data and can be overlaid.
- ``fp16_underflow``: how many nonzero gradient entries become exactly zero when stored in fp16
  (below half its smallest subnormal, 2^-25 ≈ 3e-8, they round to zero), with and without a scale.
- ``scaler_backoff``: a GradScaler started too high, step by step: the scale halves after every
  step whose gradients overflowed, and that step is skipped (the weights do not move).

Lesson 06 uses these; they work on CPU (autocast supports bf16 and fp16 there) and on CUDA.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..profiles import run_steps

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Curve:
    precision: str                                       # "fp32", "bf16", "fp16", "fp16 + scaler"
    losses: list[float] = field(default_factory=list)     # one per step
    scales: list[float] = field(default_factory=list)     # the scaler's factor after each step
    skipped: list[bool] = field(default_factory=list)     # True where the step left the weights alone


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _snapshot(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def train_curve(model: nn.Module, batch_at: Callable[[int], Batch], loss_fn: Callable, *, steps: int,
                amp_dtype: torch.dtype | None = None, scaler: torch.amp.GradScaler | None = None,
                lr: float = 1e-3, name: str | None = None, live=None) -> Curve:
    """Train ``model`` for ``steps`` AdamW steps on ``batch_at(step)``; return the losses (fp32).

    ``live``: a ``training.LiveCurve`` to draw the loss in (this run starts a new curve in it; the
    caller closes it, so that a loop over precisions keeps one figure), or None.
    """
    if scaler is not None and amp_dtype != torch.float16:
        raise ValueError(f"a GradScaler is for fp16 autocast, got amp_dtype={amp_dtype}")
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    curve = Curve(name or {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
                  + (" + scaler" if scaler is not None else ""))
    if live is not None:
        live.start(title=curve.precision, total_steps=steps)
    for step in range(run_steps(steps)):
        x, y = batch_at(step)
        with _autocast(device, amp_dtype):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        before = _snapshot(model) if scaler is not None else None
        if scaler is None:
            loss.backward()
            opt.step()
        else:                    # scale the loss up, unscale the grads, skip the step on inf/NaN
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            curve.scales.append(scaler.get_scale())
            curve.skipped.append(all(torch.equal(a, b) for a, b in zip(before, model.parameters(),
                                                                        strict=True)))
        curve.losses.append(loss.detach().float().item())
        if live is not None:
            live.update(step + 1, loss=curve.losses[-1])
    return curve


def smoothed(values: list[float], window: int) -> torch.Tensor:
    """Trailing mean over ``window`` steps (shorter at the start): the curve without batch noise."""
    x = torch.tensor(values, dtype=torch.float64)
    sums = torch.cat([torch.zeros(1, dtype=torch.float64), x.cumsum(0)])
    starts = (torch.arange(1, len(x) + 1) - window).clamp(min=0)
    return (sums[1:] - sums[starts]) / (torch.arange(1, len(x) + 1) - starts)


@dataclass
class Underflow:
    nonzero: int        # gradient entries that are nonzero in fp32
    zeroed: int         # of those, how many become exactly 0 when stored in fp16
    smallest: float     # the smallest nonzero |gradient| (fp32)

    @property
    def fraction(self) -> float:
        return self.zeroed / max(self.nonzero, 1)


def fp16_underflow(grads: list[torch.Tensor], scale: float = 1.0) -> Underflow:
    """Count the nonzero entries of ``grads`` (fp32) that fp16 flushes to zero after ``× scale``."""
    flat = torch.cat([g.detach().float().flatten() for g in grads])          # (N,)
    nonzero = flat[flat != 0]
    zeroed = int(((nonzero * scale).half() == 0).sum())
    return Underflow(nonzero=int(nonzero.numel()), zeroed=zeroed,
                     smallest=float(nonzero.abs().min()) if nonzero.numel() else float("nan"))


def scaler_backoff(model: nn.Module, batch_at: Callable[[int], Batch], loss_fn: Callable, *,
                   steps: int, init_scale: float, lr: float = 1e-3, live=None) -> Curve:
    """fp16 autocast with a GradScaler started at ``init_scale``: its scale and skips, step by step."""
    device = next(model.parameters()).device
    scaler = torch.amp.GradScaler(device.type, init_scale=init_scale)
    return train_curve(model, batch_at, loss_fn, steps=steps, amp_dtype=torch.float16, scaler=scaler,
                       lr=lr, live=live)


__all__ = ["PRECISIONS", "Curve", "Underflow", "fp16_underflow", "scaler_backoff", "smoothed",
           "train_curve"]
