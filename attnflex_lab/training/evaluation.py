"""Evaluation for ``fit()`` and for lessons: metrics in eval mode, without gradients.

``evaluate(model, data, eval_fn)`` calls ``eval_fn(model, data) -> {"metric": float, ...}``;
without an eval_fn it reports the mean loss as ``{"val_loss": ...}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from .batches import iterate_batches, to_device
from .config import AMP_DTYPES


def split_loss(out) -> tuple[torch.Tensor, dict]:
    """``loss`` or ``(loss, extras)`` -> (loss, extras). Extras stay tensors (detached): turning them
    into floats would wait for the device every step, so the loop does it only for logged steps."""
    if isinstance(out, tuple):
        loss, extras = out
        if not isinstance(extras, dict):
            raise TypeError(f"loss_fn's extras must be a dict of name -> number, got "
                            f"{type(extras).__name__}")
        return loss, {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in extras.items()}
    return out, {}


def evaluate(model: nn.Module, data: Dataset, eval_fn: Callable | None = None, *,
             loss_fn: Callable | None = None, batch_size: int = 256,
             device: torch.device | str | None = None, amp_dtype: str | None = None) -> dict:
    """Metrics of ``model`` on ``data``, in eval mode and without gradients.

    With ``eval_fn``: ``eval_fn(model, data)``. Without: the mean ``loss_fn`` over the data, as
    ``{"val_loss": ...}``. Train mode is restored afterwards.
    """
    if eval_fn is None and loss_fn is None:
        raise ValueError("evaluate needs an eval_fn or a loss_fn")
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    try:
        with torch.no_grad(), amp_autocast(device, amp_dtype):
            if eval_fn is not None:
                metrics = eval_fn(model, data)
            else:
                total, count = 0.0, 0
                for batch in iterate_batches(data, batch_size):
                    loss, _ = split_loss(loss_fn(model, to_device(batch, device)))
                    total += float(loss) * len(batch[0])
                    count += len(batch[0])
                metrics = {"val_loss": total / count}
    finally:
        model.train(was_training)
    if not isinstance(metrics, dict) or not metrics:
        raise TypeError(f"eval_fn must return a non-empty dict of floats, got {metrics!r}")
    return {k: float(v) for k, v in metrics.items()}


def amp_autocast(device: torch.device, amp_dtype: str | None):
    """``torch.autocast`` for a config's ``amp_dtype`` ("bf16", "fp16"), or a no-op for None."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp_dtype])
