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

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from ._loop import TrainingRun
from .callbacks import RecordAttention, TrainState
from .checkpoint import load_checkpoint, set_rng_state, weights_sha256
from .device import pick_device, seed_everything
from .evaluation import AMP_DTYPES, evaluate


@dataclass
class TrainConfig:
    steps: int = 1000              # optimizer steps (the run length)
    batch_size: int = 64           # global batch size (all ranks together)
    lr: float = 3e-3               # peak learning rate (AdamW)
    weight_decay: float = 0.0      # AdamW decoupled weight decay
    warmup_steps: int = 0          # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.1      # the final lr as a fraction of the peak
    grad_clip: float | None = 1.0  # max global gradient norm; None = no clipping
    amp_dtype: str | None = None   # None | "bf16" | "fp16" (fp16 uses a GradScaler)
    compile: bool = False          # torch.compile, falling back cleanly where unsupported
    device: str | None = None      # None -> pick_device()
    seed: int = 0                  # seeds the RNGs and the batch order
    eval_every: int = 0            # steps between evaluations; 0 -> only at the end
    patience: int | None = None    # early stopping: evals without improvement; None = off
    metric: str | None = None      # eval key for early stopping and the bar; None -> first key
    higher_is_better: bool | None = None  # None -> False if the metric name has "loss", else True
    checkpoint_dir: str | None = None     # where step_XXXXXXXX.pt files go; None = no checkpoints
    checkpoint_every: int = 0      # steps; 0 -> only at the end (if checkpoint_dir)
    checkpoint_keep: int = 2       # newest checkpoints kept on disk; 0 keeps all
    log_every: int = 1             # steps between history records (each costs one device sync)
    progress: bool = True          # tqdm.auto bar (on stderr) with loss and metric

    def __post_init__(self):
        problems = []
        for name in ("steps", "batch_size", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                problems.append(f"{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "checkpoint_keep"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                problems.append(f"{name} must be a non-negative int, got {getattr(self, name)!r}")
        if not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if self.amp_dtype not in (None, *AMP_DTYPES):
            problems.append(f"amp_dtype must be None, 'bf16' or 'fp16', got {self.amp_dtype!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience <= 0):
            problems.append(f"patience must be a positive int or None, got {self.patience!r}")
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The lr multiplier used for optimizer step ``step`` (0-based): warm-up, then cosine decay."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay_steps = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine


@dataclass
class History:
    """What happened in a run: per-step records and eval records, as plain data."""

    steps: list[dict] = field(default_factory=list)   # {"step", "loss", "lr", "grad_norm", ...}
    evals: list[dict] = field(default_factory=list)   # {"step", <metric>: value, ...}
    metric: str | None = None                         # the metric early stopping watched
    best_step: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0                              # wall time, summed over resumed sessions

    def values(self, key: str, where: str = "steps") -> tuple[list[int], list[float]]:
        """(steps, values) of one key: ``values("loss")``, ``values("accuracy", "evals")``."""
        records = self.steps if where == "steps" else self.evals
        pairs = [(r["step"], r[key]) for r in records if key in r]
        return [s for s, _ in pairs], [v for _, v in pairs]

    @property
    def final_loss(self) -> float | None:
        return self.steps[-1]["loss"] if self.steps else None

    @property
    def last_eval(self) -> dict:
        return dict(self.evals[-1]) if self.evals else {}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**data)


# --- the loop ----------------------------------------------------------------------------------

def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _pick_train_device(cfg: TrainConfig, world_size: int) -> torch.device:
    device = pick_device(cfg.device)
    if world_size > 1 and device.type == "cuda" and device.index is None:
        local_rank = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
        device = torch.device("cuda", local_rank)
    return device


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
    rank, world = _distributed()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must divide by the world size {world} "
                         f"(every rank takes an equal slice of each global batch)")
    seed_everything(cfg.seed)
    device = _pick_train_device(cfg, world)
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


__all__ = ["History", "RecordAttention", "TrainConfig", "TrainState", "evaluate", "fit",
           "lr_factor", "weights_sha256"]
