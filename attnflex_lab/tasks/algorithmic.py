"""Sequence tasks whose right alignment is known: reverse, sort and copy.

Each example is a sequence x (T,) of digits 0..vocab-1, a target y (T,) and the alignment a (T,):
the input position that output position i must read. For reverse a_i = T - 1 - i, for copy a_i = i,
for sort a_i is the position of the i-th smallest input (ties broken by position, a stable sort).
A model whose attention lands on a has found the algorithm, not a shortcut; the lessons compare the
learned attention with a.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

TASKS = ("reverse", "sort", "copy")


@dataclass
class SequenceTask:
    """x, y, alignment: (N, T) long tensors; ``dataset()`` gives the (x, y) pairs training uses."""

    name: str
    x: torch.Tensor          # (N, T) inputs
    y: torch.Tensor          # (N, T) targets
    alignment: torch.Tensor  # (N, T) input position each output position must read
    vocab_size: int          # digits 0..vocab_size-1

    def dataset(self, with_alignment: bool = False) -> TensorDataset:
        tensors = (self.x, self.y, self.alignment) if with_alignment else (self.x, self.y)
        return TensorDataset(*tensors)

    def __len__(self) -> int:
        return self.x.shape[0]


def make_task(name: str, n: int, length: int, *, vocab_size: int = 10, seed: int = 0) -> SequenceTask:
    """``n`` seeded examples of task ``name`` ("reverse", "sort" or "copy") with sequences of ``length``."""
    if name not in TASKS:
        raise ValueError(f"task {name!r} is not one of {TASKS}")
    for label, value, low in (("n", n, 1), ("length", length, 2), ("vocab_size", vocab_size, 2)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an int ≥ {low}, got {value!r}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (n, length), generator=gen)           # (N, T)
    positions = torch.arange(length).expand(n, length)                      # (N, T)
    if name == "reverse":
        alignment = positions.flip(1)                                       # a_i = T - 1 - i
    elif name == "sort":
        alignment = torch.sort(x, dim=1, stable=True).indices               # position of the i-th smallest
    else:
        alignment = positions.clone()                                       # a_i = i
    y = torch.gather(x, 1, alignment)                                       # y_i = x[a_i]
    return SequenceTask(name, x, y, alignment, vocab_size)

