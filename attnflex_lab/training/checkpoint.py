"""Checkpoints: written atomically, loaded with ``weights_only=True``, enough to resume exactly.

A checkpoint is a dict of tensors and plain data (no pickled code), so ``torch.load(...,
weights_only=True)`` reads it and a file carrying anything else is refused before it can run.
Random-number states are stored as tensors and ints for the same reason.

Integrity: ``save_training_checkpoint`` records a SHA-256 of every tensor in the checkpoint
(``tensors_sha256``) and ``load_checkpoint`` recomputes it, so a flipped bit on disk is refused with
the file's name instead of being served. Checkpoints written before the hash existed carry none and
still load (unverified). Model weights that are not finite (NaN, ±inf) are refused at load.
A run holds ``lock_directory(dir)`` on its checkpoint folder (``folders.py``), so a second run into it
stops at once.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

# the folder checks live in folders.py; imported here too, where callers have always found them
from .folders import LOCK_NAME, CheckpointDirError, check_writable, lock_directory  # noqa: F401

FORMAT = "attnflex-lab-checkpoint"
VERSION = 1
_NAME = re.compile(r"step_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoints in ``directory``, oldest step first (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def check_fresh_directory(directory: str | os.PathLike) -> None:
    """Refuse to start a fresh run in a directory that already holds checkpoints.

    Two runs in one folder mix their files: pruning keeps the newest steps (maybe the old run's),
    and ``resume=DIR`` would then go on from the old run. Nothing in the folder is touched here.
    """
    found = list_checkpoints(directory)
    if found:
        raise CheckpointDirError(
            f"checkpoint directory {str(directory)!r} already holds {len(found)} checkpoint(s) "
            f"(newest {found[-1].name}) from an earlier run: pass --resume {directory} "
            f"(fit: resume=...) to go on from it, --overwrite (fit: overwrite=True) to delete them "
            f"first, or pick an empty folder")


def clear_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Delete the step_*.pt checkpoints (and temporary files a killed save left) in ``directory``.

    Other files are left alone. Returns what was deleted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    leftovers = [p for p in directory.iterdir() if p.name.startswith(".step_") and p.suffix == ".tmp"]
    doomed = list_checkpoints(directory) + leftovers
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:  # Windows: no directory handles; NTFS journals the rename itself
        return
    fd = os.open(directory, os.O_RDONLY | flag)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_atomic(obj: dict, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same directory, then ``os.replace``.

    A reader (or a run killed mid-write) sees either the old file or the complete new one. The file
    is fsynced before the rename and the directory after it, so a power cut cannot leave the new
    name pointing at unwritten data or lose the rename itself.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(path.parent)
    return path


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _is_intact_torch_file(path: Path) -> bool | None:
    """Is ``path`` a complete torch.save zip (a ``data.pkl`` inside, every member passing its CRC
    check)? None when the file cannot be opened at all (then the open error says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            has_pickle = any(name.endswith("data.pkl") for name in archive.namelist())
            return has_pickle and archive.testzip() is None
    except zipfile.BadZipFile:
        return False
    except OSError:
        return None


def _explain_load_error(path: Path, err: Exception) -> None:
    """Raise a CheckpointError (caused by ``err``) if ``err`` comes from the file's content."""
    if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
        raise CheckpointError(
            f"refused to load {str(path)!r}: it holds pickled Python objects, not just tensors and "
            f"plain data, so it may carry code; nothing in it was run ({_first_line(err)})"
        ) from err
    if _is_intact_torch_file(path) is False:
        size = path.stat().st_size
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r} ({size} bytes): the file is truncated, corrupt "
            f"or not a torch file ({type(err).__name__}: {_first_line(err)})") from err


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and check a checkpoint written by ``fit``. Never runs code stored in the file."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"no checkpoint (step_*.pt) in directory {str(path)!r}")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        _explain_load_error(path, err)
        raise  # an intact file (or one the OS would not open): the cause lies elsewhere, keep it
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{str(path)!r} is not an attnflex-lab checkpoint (expected a dict "
                              f"with format={FORMAT!r}; found {keys})")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint version {data.get('version')!r}; this "
                              f"attnflex-lab reads version {VERSION}")
    needed = ("step", "model", "optimizer", "scheduler", "history", "early_stop", "rng")
    missing = [k for k in needed if k not in data]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks the entries {missing}")
    _verify_tensors(path, data)
    return data


# --- integrity: a hash of every tensor, and finite weights -----------------------------------------

HASH_KEY = "tensors_sha256"


def _tensor_leaves(obj, prefix: str = ""):
    """(path, tensor) for every tensor in nested dicts/lists/tuples, in an order fixed by the keys."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            if not (prefix == "" and key == HASH_KEY):
                yield from _tensor_leaves(obj[key], f"{prefix}/{key}")
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            yield from _tensor_leaves(item, f"{prefix}/{i}")


def tensors_sha256(checkpoint: dict) -> str:
    """SHA-256 over every tensor of a checkpoint (its path, dtype, shape and bytes), plain data
    aside: what a flipped bit on disk changes in the numbers a model or a resume would use."""
    digest = hashlib.sha256()
    for where, tensor in _tensor_leaves(checkpoint):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{where}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _verify_tensors(path: Path, data: dict) -> None:
    """Refuse a checkpoint whose tensors changed since saving, or whose weights are not finite.
    One written before hashes were recorded (no ``tensors_sha256``) is only checked for finiteness."""
    recorded = data.get(HASH_KEY)
    if recorded is not None and tensors_sha256(data) != recorded:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: its tensors do not match the SHA-256 recorded when "
            f"it was saved (a changed bit on disk or in a copy); refusing to use it, restore it from "
            f"a good copy or go on from an earlier step")
    bad = [name for name, t in data["model"].items()
           if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"checkpoint {str(path)!r} holds weights that are not finite (NaN or "
                              f"inf) in {bad[:5]}{' ...' if len(bad) > 5 else ''}: the run diverged "
                              f"before this step; go on from an earlier checkpoint")


# --- random-number states as tensors and plain data ---------------------------------------------

def rng_state(device: str | torch.device | None = None) -> dict:
    """Every RNG a run touches, as tensors and ints (loadable with weights_only=True).

    On CUDA only one GPU's generator is saved: ``device``'s, by default the current one (under DDP,
    the rank's own, set by ``distributed.setup``). Asking every GPU for its state, as
    ``get_rng_state_all`` does, would open a CUDA context per rank on every GPU at each save."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002 (we save the legacy global RNG)
    py_version, py_internal, py_gauss = random.getstate()
    cuda_device = _cuda_device(device)
    state = {
        "torch": torch.get_rng_state(),
        "cuda": [] if cuda_device is None else [torch.cuda.get_rng_state(cuda_device)],  # one GPU's
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    return state


def _cuda_device(device) -> torch.device | None:
    """The one GPU whose generator a checkpoint keeps: ``device``, else the current one, else None."""
    if device is not None:
        device = torch.device(device)
        return device if device.type == "cuda" else None
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None


def set_rng_state(state: dict, device: str | torch.device | None = None) -> None:
    """Restore what ``rng_state`` saved. Its tensors may sit on any device (a checkpoint loaded with
    ``map_location="cuda"``): each is brought to the CPU first. The saved GPU state goes to
    ``device`` (default: the current GPU)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == 1:  # the training GPU's state
            torch.cuda.set_rng_state(state["cuda"][0].cpu(), _cuda_device(device) or "cuda")
        else:  # written before one GPU's state was kept: every GPU's, in order
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]][: torch.cuda.device_count()])
    n = state["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["internal"].cpu().tolist()), p["gauss"]))


def weights_sha256(model: nn.Module | dict) -> str:
    """sha256 of every parameter and buffer (names, dtypes, shapes, bytes): same hash, same weights.
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_training_checkpoint(directory, state, scheduler, scaler, callbacks, *, config: dict,
                             keep: int = 0, rank_rngs: list | None = None,
                             device: str | torch.device | None = None) -> Path:
    """Everything ``fit(resume=...)`` needs, as ``directory/step_XXXXXXXX.pt``.

    Only the newest ``keep`` checkpoints stay on disk (0 keeps all). ``rank_rngs``: under DDP,
    every rank's ``rng_state()`` in rank order, so each rank resumes its own dropout stream.
    ``device``: the device training runs on, whose CUDA generator is saved (a run on cuda:1 that never
    made it current would otherwise save GPU 0's)."""
    ckpt = {
        "format": FORMAT, "version": VERSION, "step": state.step,
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
        "history": state.history.to_dict(), "early_stop": dict(state.extra["early_stop"]),
        "rng": rng_state(device), "config": config, "rng_ranks": rank_rngs or [],
        # the batch stream is a pure function of (seed, step): this is all of the sampler's state
        "data": {"seed": config.get("seed"), "samples_seen": state.step * config.get("batch_size", 0)},
        "callbacks": {str(i): cb.state_dict() for i, cb in enumerate(callbacks)
                      if hasattr(cb, "state_dict")},
    }
    ckpt[HASH_KEY] = tensors_sha256(ckpt)          # checked by load_checkpoint
    path = save_atomic(ckpt, checkpoint_path(directory, state.step))
    if keep:
        prune_checkpoints(directory, keep, newest=path)
    return path


def prune_checkpoints(directory, keep: int, *, newest: Path) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints up to ``newest`` (the one just written).

    Files of later steps are never counted as newer: they belong to another run or to the future
    this run is rewriting, and must not push the new checkpoint out."""
    step = int(_NAME.search(newest.name).group(1))
    ours = [p for p in list_checkpoints(directory) if int(_NAME.search(p.name).group(1)) <= step]
    doomed = ours[:-keep]
    for old in doomed:
        old.unlink(missing_ok=True)
    return doomed
