"""Plain data for a training run (a leaf: it imports nothing else from the engine).

``TrainConfig`` says what to run, ``lr_factor`` what lr each step uses, ``History`` what happened.
The loop, the callbacks and the checkpoints all import downward from here, so no module of the
engine needs another at import time only for its types.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
    live_plot: bool | None = None  # a loss curve redrawn in place; None: on inside a Jupyter kernel
    recipe: str | None = None      # "name/profile" of the recipe that built the run (recipes.build sets
                                   # it): saved in every checkpoint, so `serve` knows what it loads

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
        if self.live_plot not in (None, True, False):
            problems.append(f"live_plot must be None (auto), True or False, got {self.live_plot!r}")
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
