"""Multi-task training with a task token, against one model per task (lesson 10).

Every input gets a task token in front (10 = reverse, 11 = rotate, ...), so one encoder can learn
several tasks and must read the token to know which. Each separate model trains ``steps`` steps on
its own task; the multi-task model trains ``steps × n_tasks`` steps on batches drawn from all tasks,
so every task sees as many examples either way. **Negative transfer** is what a task loses by
sharing: accuracy(separate) − accuracy(multi-task) > 0 (Caruana 1997; Ruder 2017's overview).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..models.transformer import EncoderConfig, SequenceEncoder
from ..profiles import by_profile
from ..recipes.sequence import predict
from ..tasks.algorithmic import SequenceTask, make_task
from ..training import TrainConfig, fit
from .transfer import rotate_task

IGNORE = -100  # the label of the task-token position: no loss, no accuracy


def with_task_token(task: SequenceTask, token: int) -> TensorDataset:
    """(x, y) with the task token in front: x (N, 1 + T), y (N, 1 + T) whose first label is ignored."""
    n = task.x.shape[0]
    x = torch.cat([torch.full((n, 1), token), task.x], dim=1)        # (N, 1 + T)
    y = torch.cat([torch.full((n, 1), IGNORE), task.y], dim=1)       # (N, 1 + T)
    return TensorDataset(x, y)


def token_loss(model, batch) -> torch.Tensor:
    x, y = batch[0], batch[1]                                         # (B, 1 + T) each
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE)


def token_accuracy(model, data: TensorDataset) -> dict:
    x, y = data.tensors
    keep = y != IGNORE                                                # (N, 1 + T)
    return {"token_accuracy": (predict(model, x)[keep] == y[keep]).float().mean().item()}


def make_tasks(names, n: int, length: int, seed: int) -> dict[str, SequenceTask]:
    return {name: rotate_task(n, length, 1, seed=seed) if name == "rotate"
            else make_task(name, n, length, seed=seed) for name in names}


@dataclass
class MultiTaskResult:
    separate: dict[str, float]   # token accuracy of each task's own model on its test set
    multi: dict[str, float]      # the shared model's, task by task

    @property
    def negative_transfer(self) -> dict[str, float]:
        """separate − multi per task: > 0 means sharing hurt that task."""
        return {name: self.separate[name] - self.multi[name] for name in self.separate}


def run_multitask(profile: str, names=("reverse", "rotate"), seed: int = 0) -> MultiTaskResult:
    """Train one model per task and one shared model with a task token; score both on each task."""
    length = by_profile(smoke=6, cpu=8, gpu=16, profile_name=profile)
    n_train = by_profile(smoke=256, cpu=8000, gpu=40_000, profile_name=profile)
    n_test = by_profile(smoke=128, cpu=1000, gpu=2000, profile_name=profile)
    steps = by_profile(smoke=20, cpu=300, gpu=1500, profile_name=profile)
    tokens = {name: 10 + i for i, name in enumerate(names)}
    train = {k: with_task_token(t, tokens[k]) for k, t in make_tasks(names, n_train, length, 100 * seed + 1).items()}
    test = {k: with_task_token(t, tokens[k]) for k, t in make_tasks(names, n_test, length, 100 * seed + 2).items()}

    def trained(data, n_steps):
        torch.manual_seed(seed)
        model = SequenceEncoder(EncoderConfig(
            vocab_size=10 + len(names), n_classes=10, max_len=length + 1, n_heads=4, n_layers=2,
            d_model=by_profile(smoke=32, cpu=32, gpu=64, profile_name=profile)))
        cfg = TrainConfig(steps=n_steps, batch_size=by_profile(smoke=32, cpu=128, gpu=256, profile_name=profile),
                          lr=5e-3, warmup_steps=min(100, n_steps // 10), weight_decay=0.01, seed=seed,
                          progress=False)
        fit(model, data, None, cfg, loss_fn=token_loss)
        return model.eval()

    separate = {k: token_accuracy(trained(train[k], steps), test[k])["token_accuracy"] for k in names}
    mixed = TensorDataset(*(torch.cat(parts) for parts in zip(*(d.tensors for d in train.values()), strict=True)))
    shared = trained(mixed, steps * len(names))       # batches are shuffled, so each mixes the tasks
    multi = {k: token_accuracy(shared, test[k])["token_accuracy"] for k in names}
    return MultiTaskResult(separate, multi)
