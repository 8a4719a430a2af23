"""Lesson 10's experiments: adapt a trained sort/reverse encoder to a new task, method by method.

The base model is the ``reverse`` recipe (lesson 05's encoder), trained or loaded from a checkpoint.
The new task is **rotate**: y_i = x_{(i + k) mod T}, also a pure routing task but with a different
alignment, so adapting means moving attention. For each method in ``adapt.METHODS`` we measure
trainable parameters, accuracy on the new task, how much of the old task survives (lesson 08's
``retention``) and how far each head's attention moved (lesson 08's ``attention_shift``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..elasticity.metrics import attention_shift, retention
from ..modules import run_with_cache
from ..profiles import by_profile
from ..recipes.sequence import predict, sequence_eval, sequence_loss
from ..tasks.algorithmic import SequenceTask
from ..training import History, TrainConfig, fit
from . import METHODS, prepare, trainable_parameters

# Learning rates per method, tried in the cpu profile: the few new parameters of the PEFT methods
# need a larger step than full fine-tuning (on rotate, seed 0: LoRA reached 0.81 token accuracy in
# 400 steps at 1e-2 and 1.0 in 300 at 3e-2; adapters 0.33 at 5e-3, 0.36 at 3e-2). The prefix needs
# larger still: on shifted reverse (``sweeps.shifted_reverse_splits``, 300 steps, P = 10, seeds 0-2)
# it stayed at 0.13-0.15 with 3e-2 and reached 1.00 / 1.00 / 0.90 with 3e-1 (lesson 10, section 5).
LEARNING_RATES = {"full": 2e-3, "linear_probe": 1e-2, "freeze_attention": 2e-3, "freeze_mlp": 2e-3,
                  "lora": 3e-2, "adapter": 3e-2, "prefix": 3e-1}


def rotate_task(n: int, length: int, shift: int, *, vocab_size: int = 10, seed: int = 0) -> SequenceTask:
    """y_i = x_{(i + shift) mod T}: a cyclic shift, whose alignment a_i = (i + shift) mod T is known."""
    if not isinstance(shift, int) or not 0 < shift < length:
        raise ValueError(f"shift must be an int in 1..{length - 1}, got {shift!r}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (n, length), generator=gen)                 # (N, T)
    alignment = ((torch.arange(length) + shift) % length).expand(n, length)      # (N, T)
    return SequenceTask("rotate", x, torch.gather(x, 1, alignment), alignment.clone(), vocab_size)


def rotate_splits(profile: str, length: int, seed: int = 0, shift: int = 1) -> dict[str, SequenceTask]:
    """Train / val / test sets of rotate, sized by profile; the train set is small on purpose (a
    new task rarely comes with as much data as the first)."""
    n_train = by_profile(smoke=256, cpu=4000, gpu=20_000, profile_name=profile)
    n_eval = by_profile(smoke=128, cpu=1000, gpu=2000, profile_name=profile)
    base = 1000 * seed + 500  # not the seeds the reverse recipe used
    return {"train": rotate_task(n_train, length, shift, seed=base + 1),
            "val": rotate_task(n_eval, length, shift, seed=base + 2),
            "test": rotate_task(n_eval, length, shift, seed=base + 3)}


def finetune_config(profile: str, method: str, seed: int = 0, steps: int | None = None) -> TrainConfig:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {METHODS}")
    steps = steps or by_profile(smoke=20, cpu=300, gpu=1000, profile_name=profile)
    return TrainConfig(steps=steps, batch_size=by_profile(smoke=32, cpu=128, gpu=256, profile_name=profile),
                       lr=LEARNING_RATES[method], warmup_steps=min(50, steps // 10), weight_decay=0.0,
                       eval_every=0, seed=seed, progress=False)


@dataclass
class AdaptationResult:
    """One adaptation run: the adapted model and what it scored."""

    method: str
    model: nn.Module
    history: History
    trainable: int                # parameters trained
    total: int                    # parameters of the adapted model (base + new)
    new_accuracy: float           # token accuracy on the new task's test set
    new_exact: float              # exact match on the new task's test set
    retention: float              # token accuracy on the old task's test set, after adapting
    extras: dict = field(default_factory=dict)


def correct_tokens(model: nn.Module, task: SequenceTask) -> np.ndarray:
    """(N·T,) 1 where the model's output token is right: what ``retention`` averages."""
    model.eval()
    return (predict(model, task.x) == task.y).flatten().numpy()


def adapt_model(base: nn.Module, method: str, new: dict[str, SequenceTask], old_test: SequenceTask, *,
                profile: str, method_cfg=None, seed: int = 0, steps: int | None = None) -> AdaptationResult:
    """Copy ``base``, prepare it for ``method`` (``adapt.prepare``), train on ``new['train']``, score."""
    torch.manual_seed(seed)  # before prepare: the seed draws the new parameters' initial values too
    model = prepare(copy.deepcopy(base), method, method_cfg)
    history = fit(model, new["train"].dataset(), new["val"].dataset(),
                  finetune_config(profile, method, seed, steps), loss_fn=sequence_loss, eval_fn=sequence_eval)
    model.cpu().eval()  # fit trained it on the best device; the lesson reads it on the CPU
    scores = sequence_eval(model, new["test"].dataset())
    return AdaptationResult(method, model, history, trainable_parameters(model),
                   sum(p.numel() for p in model.parameters()), scores["token_accuracy"],
                   scores["exact_match"], retention(correct_tokens(model, old_test)))


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(L, N, H, T, S) attention of every layer and head on inputs x (N, T)."""
    model.eval()
    _, cache = run_with_cache(model, x, names="hook_pattern")
    return cache.patterns()


def attention_shift_by_head(before: torch.Tensor, after: torch.Tensor) -> np.ndarray:
    """(L, H) Jensen–Shannon shift in bits between two models' attention on the same inputs.

    before, after: (L, N, H, T, S) and (L, N, H, T, P + S). A prefix adds P keys in front; the base
    model puts no mass there, so its rows get P zeros in front: mass moved onto the prefix counts
    as a shift.
    """
    if before.shape[:-1] != after.shape[:-1] or after.shape[-1] < before.shape[-1]:
        raise ValueError(f"attention maps must agree in (L, N, H, T) and the adapted one may only add "
                         f"keys, got {tuple(before.shape)} and {tuple(after.shape)}")
    extra = after.shape[-1] - before.shape[-1]
    before = torch.nn.functional.pad(before, (extra, 0))                    # (L, N, H, T, P + S)
    L, _, H = before.shape[:3]
    return np.array([[attention_shift(before[layer, :, head].double().numpy(),
                                      after[layer, :, head].double().numpy())
                      for head in range(H)] for layer in range(L)])         # (L, H)
