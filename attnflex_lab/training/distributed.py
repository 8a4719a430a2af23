"""torchrun / DDP set-up: start the process group from the environment, rank-0 helpers, teardown.

``torchrun --nproc_per_node=N script.py`` starts N copies of the script and gives each one RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in its environment. ``init_from_env()`` reads
them and joins the group: NCCL when the processes drive GPUs (one GPU per process, the one numbered
LOCAL_RANK), gloo on CPU. Started without torchrun it does nothing and reports a world of one, so
the same script runs either way. ``fit()`` notices an initialised group and wraps the model in
``DistributedDataParallel`` itself.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import pick_device

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    rank: int               # this process among all processes (0 .. world_size-1)
    world_size: int         # how many processes train together
    local_rank: int         # this process among those on this machine (picks the GPU)
    device: torch.device    # where this process trains
    backend: str | None     # "nccl", "gloo", or None when not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the torchrun variables are all set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*)."""
    return all(name in os.environ for name in _TORCHRUN_VARS)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that prints, checkpoints and shows progress."""
    return rank() == 0


def main_print(*args, **kwargs) -> None:
    """``print`` on rank 0 only, so N processes do not print N copies."""
    if is_main_process():
        print(*args, **kwargs)


def training_device(requested: str | torch.device | None = None) -> torch.device:
    """Where this process trains: ``pick_device(requested)``, and under DDP on CUDA this rank's own
    GPU (LOCAL_RANK) when no index was given, so N processes never share GPU 0."""
    device = pick_device(requested)
    if world_size() > 1 and device.type == "cuda" and device.index is None:
        local_rank = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
        device = torch.device("cuda", local_rank)
    return device


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of this rank's own RNGs (dropout, sampling): ``seed`` itself on rank 0 at step 0.

    Seeding every rank alike would give every rank the same dropout masks, so N ranks would train
    like one process whose mask repeats N times. The batch order does not use these RNGs (it is a
    function of (seed, step) alone), so the ranks still split each global batch exactly.
    ``step`` gives a fresh stream to a rank that resumes without a saved RNG state of its own.
    """
    if rank == 0 and step == 0:
        return seed
    digest = hashlib.sha256(f"attnflex-rank-seed|{seed}|{rank}|{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # a non-negative int64


def all_gather_objects(obj) -> list:
    """``obj`` from every rank, in rank order (a list of one when not distributed)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def default_backend(device: torch.device | str | None = None) -> str:
    """NCCL for CUDA devices (GPU to GPU, fastest), gloo for everything else."""
    if device is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(backend: str | None = None, device: str | None = None) -> DistInfo:
    """Join the torchrun process group if this process was started by torchrun; return where we are.

    ``device``: "cuda" or "cpu" (default: CUDA when available). Under torchrun on CUDA each process
    takes GPU LOCAL_RANK. Calling it twice is harmless.
    """
    want_cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
    if want_cuda and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but CUDA is not available here")
    if not launched_by_torchrun():
        dev = torch.device("cuda" if want_cuda else "cpu")
        return DistInfo(0, 1, 0, dev, dist.get_backend() if is_distributed() else None)
    local_rank = int(os.environ["LOCAL_RANK"])
    if want_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPUs are "
                             f"visible; use --nproc_per_node ≤ the number of GPUs")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    backend = backend or default_backend(dev)
    if not is_distributed():
        dist.init_process_group(backend=backend)  # reads MASTER_ADDR/PORT, RANK, WORLD_SIZE from env
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, dist.get_backend())


def teardown(*, wait_for_peers: bool = True) -> None:
    """Leave the process group (at the end of a run; safe to call when not distributed).

    ``wait_for_peers``: a barrier first. A rank whose last collective has returned may still be
    sending to a peer whose copy has not, and closing the connection under it can abort that peer
    (gloo: "terminate called without an active exception"). After an error the peers may never reach
    the barrier, so pass False there and leave at once.
    """
    if is_distributed():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def distributed_session(backend: str | None = None, device: str | None = None):
    """``with distributed_session() as info:`` joins the group if under torchrun and always leaves it."""
    joined_here = launched_by_torchrun() and not is_distributed()
    info = init_from_env(backend, device)
    failed = True
    try:
        yield info
        failed = False
    finally:
        if joined_here:
            teardown(wait_for_peers=not failed)
