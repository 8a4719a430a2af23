"""Lesson 10's comparisons that a single run cannot make: seeds, step budgets and LoRA's settings.

- ``over_seeds``: every method on every seed (the base model fixed; a seed draws the new task's data,
  the new parameters' initial values and the batch order), summarised by ``spread`` as mean and range.
- ``budget_sweep``: one seed, several step budgets: is a method still improving when the table stops?
- ``lora_grid``: LoRA's rank × target slices, precomputed so that lesson 10's widget only looks up.
- ``shifted_reverse_splits``: a second new task, y_i = (x_{T−1−i} + offset) mod V: the base model's
  route (reverse) is right and only *what* it outputs must change. By the prefix identity
  (``prefix.prefix_decomposition``) a prefix can blend in its own values but cannot move a head to
  another input position, so this is the kind of task a prefix can learn, unlike rotate; with
  ``SHIFTED_REVERSE_PREFIX`` and the prefix's learning rate it does (lesson 10, section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..profiles import by_profile
from ..tasks.algorithmic import SequenceTask, make_task
from .lora import LoRAConfig
from .prefix import PrefixConfig
from .transfer import AdaptationResult, adapt_model, rotate_splits

# The prefix lesson 10 trains on shifted reverse: P = 16 (the section 5 table's P = 4 reached
# 0.90 / 0.95 / 0.80 there, seeds 0-2 at 300 steps; P = 16 reached 1.00 on all three).
SHIFTED_REVERSE_PREFIX = PrefixConfig(length=16)


@dataclass(frozen=True)
class Spread:
    """A score over seeds: its mean and its range (min, max), with the values themselves."""

    mean: float
    low: float
    high: float
    values: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def spread(values) -> Spread:
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError("spread needs at least one value")
    return Spread(float(np.mean(values)), min(values), max(values), values)


def over_seeds(base: nn.Module, methods, seeds, old_test: SequenceTask, *, profile: str, length: int,
               steps: int | None = None, cfgs: dict | None = None) -> dict[str, list[AdaptationResult]]:
    """method -> one ``AdaptationResult`` per seed, each on that seed's rotate splits."""
    cfgs = cfgs or {}
    out: dict[str, list[AdaptationResult]] = {m: [] for m in methods}
    for seed in seeds:
        new = rotate_splits(profile, length, seed=seed)
        for method in methods:
            out[method].append(adapt_model(base, method, new, old_test, profile=profile,
                                           method_cfg=cfgs.get(method), seed=seed, steps=steps))
    return out


def budget_sweep(base: nn.Module, methods, budgets, new: dict[str, SequenceTask], old_test: SequenceTask, *,
                 profile: str, seed: int = 0, cfgs: dict | None = None) -> dict[str, list[float]]:
    """method -> token accuracy on the new task after each budget (in ``budgets``' order), one seed."""
    if not budgets or any(not isinstance(b, int) or b <= 0 for b in budgets):
        raise ValueError(f"budgets must be positive step counts, got {budgets!r}")
    cfgs = cfgs or {}
    return {m: [adapt_model(base, m, new, old_test, profile=profile, method_cfg=cfgs.get(m), seed=seed,
                            steps=b).new_accuracy for b in budgets] for m in methods}


def lora_grid(base: nn.Module, ranks, target_sets, new: dict[str, SequenceTask], old_test: SequenceTask, *,
              profile: str, seed: int = 0, steps: int | None = None) -> dict[tuple[int, str], dict]:
    """(rank, "q+v") -> {"accuracy", "retention", "trainable"} of LoRA with that rank on those slices."""
    grid = {}
    for targets in target_sets:
        for rank in ranks:
            r = adapt_model(base, "lora", new, old_test, profile=profile, seed=seed, steps=steps,
                            method_cfg=LoRAConfig(rank=rank, alpha=2.0 * rank, targets=tuple(targets)))
            grid[(rank, "+".join(targets))] = {"accuracy": r.new_accuracy, "retention": r.retention,
                                               "trainable": r.trainable}
    return grid


def shifted_reverse_task(n: int, length: int, offset: int = 1, *, vocab_size: int = 10,
                         seed: int = 0) -> SequenceTask:
    """y_i = (x_{T−1−i} + offset) mod V: reverse's route, with every output digit relabelled."""
    if not isinstance(offset, int) or not 0 < offset < vocab_size:
        raise ValueError(f"offset must be an int in 1..{vocab_size - 1}, got {offset!r}")
    task = make_task("reverse", n, length, vocab_size=vocab_size, seed=seed)
    return SequenceTask("shifted_reverse", task.x, (task.y + offset) % vocab_size, task.alignment, vocab_size)


def shifted_reverse_splits(profile: str, length: int, seed: int = 0, offset: int = 1) -> dict[str, SequenceTask]:
    """Train / val / test of ``shifted_reverse_task``, sized as ``rotate_splits``."""
    n_train = by_profile(smoke=256, cpu=4000, gpu=20_000, profile_name=profile)
    n_eval = by_profile(smoke=128, cpu=1000, gpu=2000, profile_name=profile)
    base = 1000 * seed + 700
    return {split: shifted_reverse_task(n, length, offset, seed=base + i)
            for i, (split, n) in enumerate((("train", n_train), ("val", n_eval), ("test", n_eval)), start=1)}


def prefix_gate_at_init(model: nn.Module, x: torch.Tensor) -> float:
    """The mean share λ of attention that goes to the prefix, over every layer, head and query of x."""
    from .transfer import attention_maps

    maps = attention_maps(model, x)                         # (L, N, H, T, P + T)
    prefix_length = maps.shape[-1] - x.shape[1]
    return float(maps[..., :prefix_length].sum(-1).mean())


__all__ = ["SHIFTED_REVERSE_PREFIX", "Spread", "budget_sweep", "lora_grid", "over_seeds", "prefix_gate_at_init",
           "shifted_reverse_splits", "shifted_reverse_task", "spread"]
