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
  global batch; gradients are averaged by DDP. Each rank seeds its own RNGs
  (``distributed.rank_seed``), so ranks draw different dropout masks; N ranks therefore equal one
  process with the same batch only for a model without dropout (or other randomness in training).
  Only rank 0 shows progress and writes checkpoints.
- ``cfg.checkpoint_dir`` must be empty of checkpoints for a fresh run: pass ``resume=`` to go on,
  or ``overwrite=True`` to delete the old checkpoints first. Mixing two runs in one folder would let
  pruning delete the new run's files and ``resume=DIR`` pick up the old run. A run holds a lock on
  the folder (``folders.lock_directory``): a second run into a folder in use fails at once. Before
  training, the folder must take a file of a checkpoint's size (a full disk or ``ulimit -f`` fails
  then, not at the first save).
- AdamW decays only weight matrices (not biases, norms or embeddings; see ``optim.py``) and is
  fused on CUDA.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..device import seed_everything
from . import distributed
from .callbacks import TrainState
from .checkpoint import (
    CheckpointError,
    check_fresh_directory,
    clear_checkpoints,
    load_checkpoint,
    set_rng_state,
)
from .config import History, TrainConfig, lr_factor
from .folders import check_room_for, lock_directory
from .loop import TrainingRun
from .optim import build_optimizer


def fit(model: nn.Module, train_data: Dataset, val_data: Dataset | None, cfg: TrainConfig, *,
        loss_fn: Callable, eval_fn: Callable | None = None, callbacks: Sequence = (),
        resume: str | os.PathLike | None = None, overwrite: bool = False) -> History:
    """Train ``model`` for ``cfg.steps`` optimizer steps; return the History (see module docstring).

    ``resume``: a checkpoint file (or a directory: its newest checkpoint). The run continues to
    the same final weights as an uninterrupted run with the same config.
    ``overwrite``: a fresh run deletes the checkpoints already in ``cfg.checkpoint_dir`` (without
    it, such a folder is refused).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if len(train_data) == 0:
        raise ValueError("train_data is empty")
    rank, world = distributed.rank(), distributed.world_size()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must divide by the world size {world} "
                         f"(every rank takes an equal slice of each global batch)")
    # rank 0 alone writes checkpoints: it holds the folder's lock for the whole run, so a second run
    # into the folder stops here, before it clears or writes anything
    writes = bool(cfg.checkpoint_dir) and rank == 0
    with lock_directory(cfg.checkpoint_dir, FOLDER_FLAG) if writes else contextlib.nullcontext():
        _prepare_checkpoint_dir(cfg, resume, overwrite, rank)
        if writes:  # a full disk or a file-size limit fails now, not at the first save
            check_room_for(cfg.checkpoint_dir, checkpoint_bytes(model), FOLDER_FLAG)
        return _fit_unlocked(model, train_data, val_data, cfg, loss_fn, eval_fn, callbacks, resume, rank, world)


FOLDER_FLAG = "--checkpoint-dir (cfg.checkpoint_dir)"  # how the folder's errors name it


def checkpoint_bytes(model: nn.Module) -> int:
    """About what one checkpoint of ``model`` takes: its state (weights, buffers) and AdamW's two
    moments per trainable parameter, plus a margin for the rest (history, RNG states, zip headers)."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values() if torch.is_tensor(t))
    moments = 2 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return state + moments + (64 << 10)


def _fit_unlocked(model, train_data, val_data, cfg, loss_fn, eval_fn, callbacks, resume, rank, world):
    seed_everything(distributed.rank_seed(cfg.seed, rank))  # per rank: dropout masks differ
    device = distributed.training_device(cfg.device)
    model.to(device).train()
    optimizer = build_optimizer(model, cfg, device)
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


def _prepare_checkpoint_dir(cfg: TrainConfig, resume, overwrite: bool, rank: int) -> None:
    """Before anything runs: refuse a folder holding checkpoints, or clear it when asked to."""
    if overwrite and resume is not None:
        raise ValueError(f"overwrite=True deletes the checkpoints in {cfg.checkpoint_dir!r}, so it "
                         f"cannot go with resume={str(resume)!r}; choose one")
    if overwrite and not cfg.checkpoint_dir:
        raise ValueError("overwrite=True needs cfg.checkpoint_dir (the folder to clear)")
    if not cfg.checkpoint_dir or resume is not None:
        return
    if overwrite:
        if rank == 0:  # the only writer; the other ranks never look at the folder
            clear_checkpoints(cfg.checkpoint_dir)
        return
    check_fresh_directory(cfg.checkpoint_dir)


_MUST_MATCH = ("seed", "batch_size", "steps", "lr", "warmup_steps", "min_lr_ratio", "weight_decay")


def _restore(resume, state, scheduler, scaler, callbacks, device) -> None:
    # Everything is loaded to the CPU, whatever the training ``device``: the RNG states must become
    # numpy arrays and CPU generator states (a GPU tensor cannot), while load_state_dict copies the
    # weights, and the optimizer's state follows, onto the device the parameters live on.
    ckpt = load_checkpoint(resume, map_location="cpu")
    saved_cfg = ckpt.get("config", {})
    changed = [f"{k}: {saved_cfg[k]!r} -> {getattr(state.cfg, k)!r}" for k in _MUST_MATCH
               if k in saved_cfg and saved_cfg[k] != getattr(state.cfg, k)]
    if changed:
        warnings.warn(f"resuming with a different config ({'; '.join(changed)}): the run will not "
                      f"match an uninterrupted one", stacklevel=3)
    state.model.load_state_dict(ckpt["model"])
    _load_optimizer(state.optimizer, ckpt["optimizer"], resume)
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
    _restore_rng(ckpt, state, cfg=state.cfg)  # last: the run continues where the saved one stood


def _load_optimizer(optimizer, saved: dict, resume) -> None:
    groups, expected = len(saved.get("param_groups", [])), len(optimizer.param_groups)
    if groups != expected:
        raise CheckpointError(f"checkpoint {str(resume)!r} holds an optimizer with {groups} parameter "
                              f"group(s), but fit builds {expected} (decay / no decay): it was written "
                              f"by an older attnflex-lab and cannot be resumed exactly")
    optimizer.load_state_dict(saved)


def _restore_rng(ckpt: dict, state, cfg: TrainConfig) -> None:
    """Each rank gets back its own RNG state (saved by every rank since per-rank seeding)."""
    per_rank = ckpt.get("rng_ranks")
    if per_rank and len(per_rank) == state.world_size:
        set_rng_state(per_rank[state.rank])
        return
    set_rng_state(ckpt["rng"])  # rank 0's state; other ranks need a stream of their own
    if state.rank != 0:
        seed_everything(distributed.rank_seed(cfg.seed, state.rank, step=state.step))


