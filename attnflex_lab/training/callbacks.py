"""Callbacks for ``fit()``: small objects with optional hooks, called on every rank.

A callback may define any of::

    on_fit_start(state)            before the first step (also after a resume)
    on_step_end(state)             after every optimizer step
    on_eval(state, metrics)        after every evaluation, with the metrics dict
    on_fit_end(state)              once, after the last step, or after a crash (then
                                   ``state.error`` holds the exception): close files here

and, to survive a resume, ``state_dict()`` / ``load_state_dict(d)`` (plain data and tensors only,
so a checkpoint still loads with ``weights_only=True``). A hook may set ``state.stop = True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import History, TrainConfig


@dataclass
class TrainState:
    """What a callback sees. ``model`` is the bare model (not the DDP or compiled wrapper)."""

    step: int                    # optimizer steps done so far
    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: History             # the History being filled
    cfg: TrainConfig
    rank: int = 0                # this process's rank (0 when not distributed)
    world_size: int = 1
    loss: float | None = None    # the last logged training loss
    stop: bool = False           # set by a callback (or early stopping) to end training
    overhead_seconds: float = 0.0  # wall time in evaluation and checkpoints (this session), not training
    extra: dict = field(default_factory=dict)  # free room for callbacks to share things
    error: BaseException | None = None  # set when training crashed; on_fit_end still runs


def call_hook(callbacks, hook: str, *args) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _detach_cpu(value):
    """A copy of ``value``, every tensor detached and on the CPU (also inside tuples and dicts)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _detach_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detach_cpu(v) for v in value)
    raise TypeError(f"RecordAttention's fn must return tensors (or tuples/lists/dicts of them), "
                    f"got {type(value).__name__}")


class RecordAttention:
    """Record attention maps every ``every`` steps, so a lesson can scrub through training.

    ``fn(model)`` returns the weights to keep (a tensor, or a tuple/dict of tensors), computed on
    fixed inputs the caller closes over. It runs in eval mode under ``no_grad`` and inside a forked
    CPU RNG, so recording never changes the training run itself.

    >>> rec = RecordAttention(every=100, fn=lambda m: m(x_fixed)[1])   # doctest: +SKIP
    >>> fit(model, train, val, cfg, loss_fn=loss, callbacks=[rec])     # doctest: +SKIP
    >>> rec.steps, rec.weights[-1].shape                               # doctest: +SKIP
    """

    def __init__(self, every: int, fn: Callable[[nn.Module], Any], *, at_start: bool = True):
        if not isinstance(every, int) or every <= 0:
            raise ValueError(f"every must be a positive int (steps between recordings), "
                             f"got {every!r}")
        self.every = every            # steps between recordings
        self.fn = fn                  # model -> weights to record
        self.at_start = at_start      # also record before the first step (step 0)
        self.records: list[tuple[int, Any]] = []

    @property
    def steps(self) -> list[int]:
        return [step for step, _ in self.records]

    @property
    def weights(self) -> list[Any]:
        return [w for _, w in self.records]

    def _record(self, state: TrainState) -> None:
        if self.records and self.records[-1][0] == state.step:
            return  # already recorded at this step (e.g. at the end of a run that was resumed)
        model = state.model
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            weights = _detach_cpu(self.fn(model))
        model.train(was_training)
        self.records.append((state.step, weights))

    def on_fit_start(self, state: TrainState) -> None:
        if self.at_start and state.step == 0:
            self._record(state)

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.every == 0:
            self._record(state)

    def on_fit_end(self, state: TrainState) -> None:
        if getattr(state, "error", None) is None:  # after a crash (a NaN loss) the maps say nothing
            self._record(state)

    def state_dict(self) -> dict:
        return {"steps": [s for s, _ in self.records], "weights": [w for _, w in self.records]}

    def load_state_dict(self, state: dict) -> None:
        self.records = list(zip(state["steps"], state["weights"], strict=True))
