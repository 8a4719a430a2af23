"""``fit()``: an importable training loop that knows nothing of any model.

    cfg = TrainConfig(steps=2000, batch_size=64, lr=3e-3)
    history = fit(model, train_data, val_data, cfg, loss_fn=loss_fn, eval_fn=eval_fn)

- Batches are drawn by fit itself from a seeded, endless stream of per-epoch permutations
  (epoch e is ``randperm(N)`` from a generator seeded by ``(cfg.seed, e)``), so the batch at step s
  depends only on (seed, s): a run is reproducible, and resuming needs no sampler state.
- ``loss_fn(model, batch) -> loss`` or ``(loss, {"name": float})``. It must call ``model(...)``
  (the forward), because under DDP ``model`` is the DDP wrapper.
- ``eval_fn(model, data) -> {"metric": float, ...}``; the first key (or ``cfg.metric``) drives the
  progress bar and early stopping. Without an eval_fn, fit reports ``val_loss``.
- Under ``torch.distributed`` (set up by the caller) each rank takes its contiguous slice of every
  global batch; gradients are averaged by DDP, so N ranks equal one process with the same batch.
  Only rank 0 shows progress and writes checkpoints.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..device import seed_everything
from . import distributed
from .callbacks import TrainState
from .checkpoint import load_checkpoint, set_rng_state
from .config import History, TrainConfig, lr_factor
from .loop import TrainingRun


def fit(model: nn.Module, train_data: Dataset, val_data: Dataset | None, cfg: TrainConfig, *,
        loss_fn: Callable, eval_fn: Callable | None = None, callbacks: Sequence = (),
        resume: str | os.PathLike | None = None) -> History:
    """Train ``model`` for ``cfg.steps`` optimizer steps; return the History (see module docstring).

    ``resume``: a checkpoint file (or a directory: its newest checkpoint). The run continues to
    the same final weights as an uninterrupted run with the same config.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if len(train_data) == 0:
        raise ValueError("train_data is empty")
    rank, world = distributed.rank(), distributed.world_size()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must divide by the world size {world} "
                         f"(every rank takes an equal slice of each global batch)")
    seed_everything(cfg.seed)
    device = distributed.training_device(cfg.device)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    scaler = torch.amp.GradScaler(device.type) if cfg.amp_dtype == "fp16" else None
    state = TrainState(step=0, model=model, optimizer=optimizer, history=History(), cfg=cfg,
                       rank=rank, world_size=world)
    state.extra["early_stop"] = {"best": None, "bad_evals": 0}
    if resume is not None:
        _restore(resume, state, scheduler, scaler, callbacks, device)
    run = TrainingRun(cfg, state, train_data, val_data, loss_fn, eval_fn, callbacks, device,
                      scheduler, scaler)
    return run.loop()


_MUST_MATCH = ("seed", "batch_size", "steps", "lr", "warmup_steps", "min_lr_ratio", "weight_decay")


def _restore(resume, state, scheduler, scaler, callbacks, device) -> None:
    ckpt = load_checkpoint(resume, map_location=device)
    saved_cfg = ckpt.get("config", {})
    changed = [f"{k}: {saved_cfg[k]!r} -> {getattr(state.cfg, k)!r}" for k in _MUST_MATCH
               if k in saved_cfg and saved_cfg[k] != getattr(state.cfg, k)]
    if changed:
        warnings.warn(f"resuming with a different config ({'; '.join(changed)}): the run will not "
                      f"match an uninterrupted one", stacklevel=3)
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    state.history = History.from_dict(ckpt["history"])
    state.extra["early_stop"] = dict(ckpt["early_stop"])
    saved = ckpt.get("callbacks", {})
    for i, cb in enumerate(callbacks):
        if str(i) in saved and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(saved[str(i)])
    state.step = int(ckpt["step"])
    set_rng_state(ckpt["rng"])  # last: the run continues exactly where the saved one stood


