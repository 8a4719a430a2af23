"""The learning-rate range test (Smith 2017, "Cyclical learning rates"; fast.ai's ``lr_find``).

Train for a few hundred steps while the lr grows geometrically from ``lr_min`` to ``lr_max`` and
record the loss. The loss falls once the lr is large enough to make progress and blows up once it
is too large; a good peak lr sits somewhat below the blow-up, where the smoothed loss falls fastest.

It reuses ``fit``'s pieces (the seeded batch stream, the decay / no-decay AdamW, one
forward-backward, clipping) so what it measures is the optimizer ``fit`` will run. The model is
trained in place: build a fresh one for the real run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import Dataset

from ..device import seed_everything
from ..profiles import run_steps
from .batches import batch_indices, gather, to_device
from .config import TrainConfig
from .loop import forward_backward, optimizer_step
from .optim import build_optimizer


@dataclass
class LRRangeResult:
    lrs: list[float] = field(default_factory=list)        # the lr of each step
    losses: list[float] = field(default_factory=list)     # the raw training loss of each step
    smoothed: list[float] = field(default_factory=list)   # bias-corrected exponential moving average
    diverged: bool = False                                 # stopped because the loss exploded

    @property
    def steepest_lr(self) -> float:
        """The lr where the smoothed loss falls fastest per unit of log(lr).

        The slope is taken across a window of a tenth of the sweep on each side: step-to-step
        differences of a noisy loss over tiny lr ratios would point at noise, not at the trend."""
        n = len(self.smoothed)
        if n < 3:
            raise ValueError("the range test needs at least 3 steps to find a slope")
        w = max(1, n // 10)
        log_lr = [math.log(lr) for lr in self.lrs]
        slopes = {i: (self.smoothed[i + w] - self.smoothed[i - w]) / (log_lr[i + w] - log_lr[i - w])
                  for i in range(w, n - w)}
        return self.lrs[min(slopes, key=slopes.get)]

    @property
    def min_loss_lr(self) -> float:
        """The lr at the smallest smoothed loss; a common rule takes a tenth of it as the peak lr."""
        return self.lrs[min(range(len(self.smoothed)), key=self.smoothed.__getitem__)]


def lr_range_test(model: nn.Module, train_data: Dataset, loss_fn: Callable, *, lr_min: float = 1e-5,
                  lr_max: float = 1.0, steps: int = 100, batch_size: int = 64, weight_decay: float = 0.0,
                  grad_clip: float | None = 1.0, smoothing: float = 0.9, diverge_factor: float = 4.0,
                  seed: int = 0, device: str | torch.device | None = None) -> LRRangeResult:
    """Step ``steps`` times with lr_k = lr_min · (lr_max / lr_min)^(k / (steps − 1)); see module doc.

    Stops early (``diverged=True``) once the smoothed loss exceeds ``diverge_factor`` × its best.
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got lr_min={lr_min!r}, lr_max={lr_max!r}")
    if not isinstance(steps, int) or steps < 3:
        raise ValueError(f"steps must be an int >= 3, got {steps!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr_min, weight_decay=weight_decay,
                      grad_clip=grad_clip, seed=seed, progress=False)
    seed_everything(seed)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    optimizer = build_optimizer(model, cfg, device)
    result, average, best = LRRangeResult(), 0.0, math.inf
    for step in range(max(run_steps(steps), 3)):   # a dry run (profiles.run_steps) keeps the 3 a slope needs
        lr = lr_min * (lr_max / lr_min) ** (step / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = batch_indices(len(train_data), batch_size, step, seed)    # (B,)
        batch = to_device(gather(train_data, idx), device)
        loss, _ = forward_backward(model, batch, loss_fn, optimizer, None, cfg, device)
        optimizer_step(model, optimizer, None, cfg)
        value = float(loss)
        average = smoothing * average + (1 - smoothing) * value
        smoothed = average / (1 - smoothing ** (step + 1))             # bias correction, as in Adam
        result.lrs.append(lr)
        result.losses.append(value)
        result.smoothed.append(smoothed)
        best = min(best, smoothed)
        if not math.isfinite(value) or smoothed > diverge_factor * best:
            result.diverged = True
            break
    return result
