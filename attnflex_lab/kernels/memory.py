"""How much memory does a computation need? Three measures that work on CPU as well as on CUDA.

- ``saved_tensor_bytes(fn)``: the bytes autograd keeps between forward and backward (counted with
  ``torch.autograd.graph.saved_tensors_hooks``; each storage once). Deterministic: the lesson's
  measure of "what does the backward need?".
- ``peak_bytes(fn)``: the high-water mark of memory allocated while ``fn`` runs, above what was
  allocated before. On CUDA, the allocator's ``max_memory_allocated``; on CPU (which keeps no such
  statistic) a ``TorchDispatchMode`` adds up every storage an op creates and subtracts it when the
  storage is freed. Memory outside torch tensors (the Python objects, the allocator's slack) is
  not counted on CPU, so the number is the same on every run.
- ``measure(fn)``: seconds per call (median of repeats) and the peak, as one record.

``fn`` takes no arguments: a closure that runs forward and backward, say.
"""

from __future__ import annotations

import statistics
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..perf.flops import time_runs


def _storage_key(t: torch.Tensor):
    storage = t.untyped_storage()
    return storage, storage.data_ptr(), storage.nbytes()


def saved_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for the backward while ``fn()`` runs (each storage once).

    Inputs that a backward needs (q, k, v) count too: they are kept alive for it.
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        _, ptr, nbytes = _storage_key(t)
        seen[ptr] = max(seen.get(ptr, 0), nbytes)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of storages created by ops while active; a finaliser subtracts each one when
    its storage is freed. Views and in-place results reuse an input's storage and are not counted."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tracked: set[int] = set()

    def _freed(self, key: int, nbytes: int) -> None:
        self._tracked.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor) and t.layout == torch.strided}
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.layout != torch.strided or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = id(storage)  # storage Python objects are preserved, so id() is stable while it lives
            if key in inputs or key in self._tracked:
                continue
            nbytes = storage.nbytes()
            self._tracked.add(key)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, key, nbytes)
        return out


def peak_bytes(fn: Callable[[], object], device: str | torch.device | None = None) -> int:
    """The most bytes that ``fn()`` had allocated at one time, above what existed before it ran."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    with _LiveBytes() as tracker:
        fn()
    return tracker.peak


@dataclass
class Measurement:
    seconds: float      # median seconds per call of fn
    peak_bytes: int     # high-water mark above the start (see peak_bytes)
    saved_bytes: int    # what autograd kept for the backward (see saved_tensor_bytes)

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


def time_call(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1,
              device: str | torch.device | None = None) -> float:
    """Median seconds per call of ``fn()`` after ``warmup`` untimed calls: ``perf.time_runs``, which
    synchronises the device (every accelerator in use when ``device`` is None)."""
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    return statistics.median(time_runs(fn, repeats=repeats, warmup=warmup, device=device))


def measure(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1,
            device: str | torch.device | None = None) -> Measurement:
    """Time ``fn`` (median of ``repeats``), then measure its peak and saved bytes in separate calls,
    so the counting does not slow the timed runs."""
    seconds = time_call(fn, repeats=repeats, warmup=warmup, device=device)
    return Measurement(seconds=seconds, peak_bytes=peak_bytes(fn, device),
                       saved_bytes=saved_tensor_bytes(fn))


__all__ = ["Measurement", "measure", "peak_bytes", "saved_tensor_bytes", "time_call"]
