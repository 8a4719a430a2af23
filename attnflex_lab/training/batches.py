"""Batches for ``fit()``: a seeded, endless stream of per-epoch permutations.

The batch at step s depends only on (seed, s), so a run is reproducible and a resumed run needs no
sampler state. Under DDP each rank takes its contiguous slice of every global batch.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.data import Dataset, default_collate


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the global batch for ``step``: positions [step·B, (step+1)·B) of the endless
    stream perm(epoch 0) ‖ perm(epoch 1) ‖ ..., each perm seeded by (seed, epoch)."""
    start, stop = step * batch_size, (step + 1) * batch_size
    parts = []
    for epoch in range(start // n, (stop - 1) // n + 1):
        perm = _epoch_permutation(n, seed, epoch)  # (n,)
        lo, hi = max(start - epoch * n, 0), min(stop - epoch * n, n)
        parts.append(perm[lo:hi])
    return torch.cat(parts)  # (B,)


def rank_slice(idx: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous share of a global batch; the shares of all ranks partition it, so DDP's
    gradient average over ranks equals one process's gradient on the whole batch."""
    if len(idx) % world_size:
        raise ValueError(f"a global batch of {len(idx)} does not split evenly over {world_size} ranks")
    local = len(idx) // world_size
    return idx[rank * local:(rank + 1) * local]  # (B / world,)


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """randperm(n) for one epoch from a generator seeded by (seed, epoch); cached, never mutated."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)  # (n,)


def gather(data: Dataset, idx: torch.Tensor) -> tuple:
    """The items at ``idx`` stacked into a batch; TensorDatasets are indexed in one go."""
    tensors = getattr(data, "tensors", None)
    if tensors is not None:
        return tuple(t[idx] for t in tensors)
    return tuple(default_collate([data[int(i)] for i in idx]))


def iterate_batches(data: Dataset, batch_size: int):
    """Every item once, in order, in batches (for evaluation)."""
    n = len(data)
    for start in range(0, n, batch_size):
        yield gather(data, torch.arange(start, min(start + batch_size, n)))


def to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
