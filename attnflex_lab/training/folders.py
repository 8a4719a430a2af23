"""Output folders checked before a run: writable, room for a checkpoint, not in use by another run.

A run that learns its folder is unusable only when it first saves has lost all its training, so
``fit`` (and the command line, earlier still) checks here first:

- ``check_writable``: the folder exists (or can be made) and takes a file;
- ``check_room_for``: it takes a file of a checkpoint's size, written and fsynced, then removed. A
  full disk or a file-size limit (``ulimit -f``, RLIMIT_FSIZE) fails here, not after the run;
- ``lock_directory``: an exclusive ``filelock`` lock (flock on POSIX, gone with the process, so a
  killed run never leaves the folder locked); a second run into a folder in use stops at once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".attnflex.lock"  # in the checkpoint folder while a run writes there
_CHUNK = 1 << 20               # the room probe writes a megabyte at a time


class CheckpointDirError(ValueError):
    """An output folder a run cannot use: a file, unwritable, too small, in use, or holding another
    run's checkpoints. The message names the flag (or config field) and the folder."""


def check_writable(directory: str | os.PathLike, flag: str = "the folder") -> Path:
    """Create ``directory`` if needed and write (then delete) a small file in it, before any work."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointDirError(f"{flag} {str(directory)!r} is a file, not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory) as probe:
            probe.write(b"attnflex-lab write check")
            probe.flush()
    except OSError as err:
        raise CheckpointDirError(f"{flag} {str(directory)!r} is not writable: "
                                 f"{err.strerror or err}") from None
    return directory


def check_room_for(directory: str | os.PathLike, nbytes: int, flag: str = "the folder") -> None:
    """Write ``nbytes`` to a temporary file in ``directory``, fsync it, delete it: a CheckpointDirError
    now (naming the size) instead of an error at the first save. Python ignores SIGXFSZ, so a write
    past RLIMIT_FSIZE raises EFBIG here rather than killing the process."""
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    zeros = bytes(min(_CHUNK, nbytes))
    try:
        with tempfile.TemporaryFile(dir=directory) as probe:
            left = nbytes
            while left:
                left -= probe.write(zeros[:left])
            probe.flush()
            os.fsync(probe.fileno())   # a disk that fills only on flush fails here too
    except OSError as err:
        raise CheckpointDirError(f"{flag} {str(directory)!r} cannot take a checkpoint of "
                                 f"{nbytes / 2**20:.1f} MB: {err.strerror or err} (a full disk or a "
                                 f"file-size limit, `ulimit -f`)") from None


@contextlib.contextmanager
def lock_directory(directory: str | os.PathLike, flag: str = "--checkpoint-dir"):
    """Hold an exclusive lock on a checkpoint folder for a run; a second holder fails at once.

    Two runs writing into one folder lose each other's checkpoints (pruning keeps the newest steps
    of either)."""
    directory = check_writable(directory, flag)
    lock = FileLock(directory / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise CheckpointDirError(f"{flag} {str(directory)!r} is in use by another run (it holds "
                                 f"{LOCK_NAME}); wait for it to finish or pick another folder") from None
    try:
        yield directory
    finally:
        lock.release()


def check_not_in_use(directory: str | os.PathLike, flag: str = "--checkpoint-dir") -> None:
    """Fail at once when another run holds the folder (the lock is taken and given back: the run
    itself holds it later, in ``fit``)."""
    with lock_directory(directory, flag):
        pass
