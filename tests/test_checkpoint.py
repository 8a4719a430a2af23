"""Checkpoints: atomic, weights_only, exact resume, and clear refusals of bad files."""

import os

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from attnflex_lab.training import TrainConfig, fit
from attnflex_lab.training.callbacks import RecordAttention
from attnflex_lab.training.checkpoint import (
    LOCK_NAME,
    CheckpointDirError,
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
    weights_sha256,
)

from .single_thread import one_thread_per_module  # noqa: F401 (autouse: one torch thread)


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen)
    return TensorDataset(x, (x.sum(1) > 0).long())


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(0.2), nn.Linear(12, 2))


def _loss(model, batch):
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def _acc(model, data):
    x, y = data.tensors
    return {"accuracy": (model(x).argmax(-1) == y).float().mean().item()}


def _cfg(tmp_path, **kw):
    base = dict(steps=50, batch_size=16, lr=1e-2, warmup_steps=5, eval_every=10, progress=False,
                checkpoint_dir=str(tmp_path), checkpoint_every=10, checkpoint_keep=0)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_reaches_the_same_weights_history_and_recordings(tmp_path):
    probe = torch.randn(3, 5)
    rec_full = RecordAttention(every=10, fn=lambda m: m[0](probe).softmax(-1))
    full = _model()
    h_full = fit(full, _data(), _data(), _cfg(tmp_path / "a"), loss_fn=_loss, eval_fn=_acc,
                 callbacks=[rec_full])
    names = [p.name for p in list_checkpoints(tmp_path / "a")]
    assert names == [f"step_{s:08d}.pt" for s in (10, 20, 30, 40, 50)]
    assert not [p for p in (tmp_path / "a").iterdir() if p.suffix == ".tmp"]

    rec_resumed = RecordAttention(every=10, fn=lambda m: m[0](probe).softmax(-1))
    resumed = _model()
    torch.manual_seed(123)  # the resumed process's own RNG state must not matter
    h_res = fit(resumed, _data(), _data(), _cfg(tmp_path / "b"), loss_fn=_loss, eval_fn=_acc,
                callbacks=[rec_resumed], resume=tmp_path / "a" / "step_00000020.pt")
    assert weights_sha256(resumed) == weights_sha256(full)
    assert [r["loss"] for r in h_res.steps] == [r["loss"] for r in h_full.steps]
    assert h_res.evals == h_full.evals
    assert rec_resumed.steps == rec_full.steps
    assert all(torch.equal(a, b) for a, b in zip(rec_resumed.weights, rec_full.weights, strict=True))


def test_resume_from_a_directory_takes_the_newest(tmp_path):
    fit(_model(), _data(), None, _cfg(tmp_path, steps=30), loss_fn=_loss)
    assert latest_checkpoint(tmp_path).name == "step_00000030.pt"
    assert load_checkpoint(tmp_path)["step"] == 30


def test_checkpoint_keep_prunes_old_files(tmp_path):
    fit(_model(), _data(), None, _cfg(tmp_path, checkpoint_keep=2), loss_fn=_loss)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000040.pt", "step_00000050.pt"]


def test_only_the_end_is_saved_when_checkpoint_every_is_zero(tmp_path):
    fit(_model(), _data(), None, _cfg(tmp_path, checkpoint_every=0, steps=25), loss_fn=_loss)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000025.pt"]


def test_checkpoint_loads_with_weights_only(tmp_path):
    fit(_model(), _data(), None, _cfg(tmp_path, steps=10), loss_fn=_loss)
    raw = torch.load(latest_checkpoint(tmp_path), weights_only=True)
    assert raw["format"] == "attnflex-lab-checkpoint" and raw["step"] == 10
    assert set(raw["rng"]) == {"torch", "cuda", "numpy", "python"}


def test_rng_state_round_trips():
    import random

    import numpy as np

    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], second[0]) and (first[1] == second[1]).all()
    assert first[2] == second[2]


class _Payload:
    """Unpickling this would create the marker file: a stand-in for malicious code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_carrying_pickled_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker_created"
    path = tmp_path / "step_00000001.pt"
    torch.save({"format": "attnflex-lab-checkpoint", "version": 1, "payload": _Payload(str(marker))},
               path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused.*nothing in it was run") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    with pytest.raises(CheckpointError, match="refused"):
        fit(_model(), _data(), None, _cfg(tmp_path / "out"), loss_fn=_loss, resume=path)
    assert not marker.exists()


def test_a_truncated_checkpoint_gives_a_clear_error(tmp_path):
    fit(_model(), _data(), None, _cfg(tmp_path, steps=10), loss_fn=_loss)
    good = latest_checkpoint(tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch file") as err:
        load_checkpoint(cut)
    assert "cut.pt" in str(err.value)


def test_foreign_and_missing_files_give_clear_errors(tmp_path):
    foreign = tmp_path / "weights.pt"
    torch.save(_model().state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not an attnflex-lab checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt.*not a torch file"):
        load_checkpoint(text)
    import zipfile

    with zipfile.ZipFile(tmp_path / "archive.pt", "w") as archive:  # a zip, but not torch.save's
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="archive.pt.*not a torch file"):
        load_checkpoint(tmp_path / "archive.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(empty)


def test_save_atomic_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "x.pt"
    save_atomic({"a": torch.ones(2)}, path)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_atomic({"a": Unsaveable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert os.listdir(tmp_path) == ["x.pt"]


def test_weights_sha256_sees_any_change():
    a, b = _model(), _model()
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-7
    assert weights_sha256(a) != weights_sha256(b)


def test_resuming_with_a_different_config_warns(tmp_path):
    fit(_model(), _data(), None, _cfg(tmp_path, steps=20), loss_fn=_loss)
    assert load_checkpoint(tmp_path)["data"] == {"seed": 0, "samples_seen": 20 * 16}
    with pytest.warns(UserWarning, match=r"batch_size: 16 -> 32.*will not match"):
        fit(_model(), _data(), None, _cfg(tmp_path / "b", steps=30, batch_size=32),
            loss_fn=_loss, resume=tmp_path)


def _snapshot(directory):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.iterdir())}


def test_a_fresh_run_refuses_a_folder_holding_checkpoints_and_touches_nothing(tmp_path):
    """Planted bug: a fresh run of 20 steps (keep=2) in a folder holding step 50 of an older run
    pruned its own new checkpoints (the old step 50 sorted newest), and resume=DIR took step 50."""
    fit(_model(), _data(), None, _cfg(tmp_path, steps=50, checkpoint_keep=2), loss_fn=_loss)
    (tmp_path / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    with pytest.raises(CheckpointDirError, match="resume") as err:
        fit(_model(), _data(), None, _cfg(tmp_path, steps=20, checkpoint_keep=2), loss_fn=_loss)
    assert str(tmp_path) in str(err.value) and "empty folder" in str(err.value)
    assert _snapshot(tmp_path) == before


def test_overwrite_clears_the_old_checkpoints_first(tmp_path):
    fit(_model(), _data(), None, _cfg(tmp_path, steps=50, checkpoint_keep=2), loss_fn=_loss)
    (tmp_path / ".step_00000060.pt.abc.tmp").write_bytes(b"left by a killed save")
    (tmp_path / "notes.txt").write_text("mine")
    fit(_model(), _data(), None, _cfg(tmp_path, steps=20, checkpoint_keep=2), loss_fn=_loss,
        overwrite=True)
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name != LOCK_NAME)  # the lock file stays
    assert kept == ["notes.txt", "step_00000010.pt", "step_00000020.pt"]
    assert load_checkpoint(tmp_path)["step"] == 20  # resume=DIR now means this run
    with pytest.raises(ValueError, match="cannot go with resume"):
        fit(_model(), _data(), None, _cfg(tmp_path), loss_fn=_loss, resume=tmp_path, overwrite=True)
    with pytest.raises(ValueError, match="needs cfg.checkpoint_dir"):
        fit(_model(), _data(), None, _cfg(tmp_path, checkpoint_dir=None), loss_fn=_loss,
            overwrite=True)


def test_pruning_never_deletes_the_checkpoint_just_written(tmp_path):
    """Resuming from step 20 in a folder that holds steps up to 50: the new step 30 must survive
    keep=2 (old pruning sorted the later steps 40 and 50 as newest and deleted it)."""
    fit(_model(), _data(), None, _cfg(tmp_path, steps=50), loss_fn=_loss)
    with pytest.warns(UserWarning, match="steps: 50 -> 30"):
        fit(_model(), _data(), None, _cfg(tmp_path, steps=30, checkpoint_keep=2), loss_fn=_loss,
            resume=tmp_path / "step_00000020.pt")
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step_00000020.pt", "step_00000030.pt", "step_00000040.pt", "step_00000050.pt"]


def test_a_corrupt_checkpoint_error_keeps_its_cause(tmp_path):
    """Planted bug: ``raise CheckpointError(...) from None`` dropped the underlying error."""
    fit(_model(), _data(), None, _cfg(tmp_path, steps=10), loss_fn=_loss)
    good = latest_checkpoint(tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_checkpoint(cut)
    cause = err.value.__cause__  # None under the old ``from None``
    assert isinstance(cause, Exception) and type(cause).__name__ in str(err.value)


def test_an_error_that_is_not_corruption_is_not_called_corruption(tmp_path, monkeypatch):
    """Planted bug: every exception from torch.load was reported as "truncated or corrupt", even
    for an intact file (here: a map_location the machine cannot serve)."""
    from attnflex_lab.training import checkpoint

    fit(_model(), _data(), None, _cfg(tmp_path, steps=10), loss_fn=_loss)
    cause = RuntimeError("Attempting to deserialize object on a CUDA device but CUDA is not available")

    def failing_load(*args, **kwargs):
        raise cause

    monkeypatch.setattr(checkpoint.torch, "load", failing_load)
    with pytest.raises(RuntimeError, match="deserialize object on a CUDA device") as err:
        load_checkpoint(tmp_path, map_location="cuda")
    assert err.value is cause


def test_save_atomic_fsyncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    """Planted bug: only the file was fsynced, so a power cut could lose the rename itself."""
    import stat

    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    save_atomic({"a": torch.ones(2)}, tmp_path / "x.pt")
    if hasattr(os, "O_DIRECTORY"):
        assert synced == [False, True]  # the file, then its directory
    monkeypatch.delattr(os, "O_DIRECTORY", raising=False)  # e.g. Windows: skipped, still saved
    synced.clear()
    save_atomic({"a": torch.zeros(2)}, tmp_path / "x.pt")
    assert synced == [False]
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["a"], torch.zeros(2))


def test_a_checkpoint_with_one_optimizer_group_is_refused_clearly(tmp_path):
    """Checkpoints from before the decay / no-decay groups hold one group; loading that into two
    would fail deep inside torch (or, were the counts equal, mix up the parameters' state)."""
    fit(_model(), _data(), None, _cfg(tmp_path / "a", steps=10), loss_fn=_loss)
    ckpt = load_checkpoint(tmp_path / "a")
    groups = ckpt["optimizer"]["param_groups"]
    merged = {**groups[0], "params": sorted(p for g in groups for p in g["params"])}
    ckpt["optimizer"]["param_groups"] = [merged]  # what an older attnflex-lab wrote
    old = save_atomic(ckpt, tmp_path / "old" / "step_00000010.pt")
    with pytest.raises(CheckpointError, match=r"1 parameter group\(s\), but fit builds 2.*older"):
        fit(_model(), _data(), None, _cfg(tmp_path / "b", steps=10), loss_fn=_loss, resume=old)


# --- integrity (SHA-256 of the tensors, finite weights) and the folder lock ----------------------

def _largest_tensor_offset(path) -> int:
    """Byte offset, in the file, of the first element of the largest tensor torch.save stored."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)                     # the zip local file header
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def test_a_flipped_bit_is_refused_with_the_files_name(tmp_path):
    """Planted bug: the hash not checked at load (or not recorded at save) lets the bit through."""
    fit(_model(), _data(), None, _cfg(tmp_path / "run", steps=10), loss_fn=_loss)
    good = latest_checkpoint(tmp_path / "run")
    data = bytearray(good.read_bytes())
    data[_largest_tensor_offset(good) + 3] ^= 0x40   # the exponent of a float32: a new value
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    torch.load(flipped, weights_only=True)           # torch itself reads it without a word
    with pytest.raises(CheckpointError, match=r"flipped\.pt.*corrupt.*SHA-256"):
        load_checkpoint(flipped)
    assert load_checkpoint(good)["step"] == 10       # the untouched file still loads


def test_non_finite_weights_are_refused_and_old_checkpoints_without_a_hash_still_load(tmp_path):
    from attnflex_lab.training.checkpoint import HASH_KEY, tensors_sha256

    fit(_model(), _data(), None, _cfg(tmp_path / "run", steps=10), loss_fn=_loss)
    ckpt = load_checkpoint(tmp_path / "run")
    name = next(iter(ckpt["model"]))
    ckpt["model"][name][0, 0] = float("nan")
    ckpt[HASH_KEY] = tensors_sha256(ckpt)            # a consistent file whose run diverged
    save_atomic(ckpt, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=rf"nan\.pt.*not finite.*{name}"):
        load_checkpoint(tmp_path / "nan.pt")
    older = load_checkpoint(tmp_path / "run")
    del older[HASH_KEY]                              # written before hashes were recorded
    save_atomic(older, tmp_path / "older.pt")
    assert load_checkpoint(tmp_path / "older.pt")["step"] == 10


def test_a_locked_checkpoint_folder_refuses_a_second_run_at_once(tmp_path):
    """Planted bug: a lock taken with a timeout (or none) lets the second run wait or go on."""
    import time

    from attnflex_lab.training.checkpoint import check_writable, lock_directory

    with lock_directory(tmp_path / "ckpt"):
        start = time.perf_counter()
        with pytest.raises(CheckpointDirError, match="ckpt.*in use by another run"):
            with lock_directory(tmp_path / "ckpt"):
                pass
        assert time.perf_counter() - start < 1.0
    with lock_directory(tmp_path / "ckpt"):          # released when the first run ends
        pass
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CheckpointDirError, match="--out .*a_file.* is a file"):
        check_writable(tmp_path / "a_file", "--out")
    with pytest.raises(CheckpointDirError, match="--out .*not writable"):
        check_writable(tmp_path / "a_file" / "sub", "--out")


class _TryTheLock:
    """A callback playing a second run: at the first step it tries to take the folder's lock."""

    def __init__(self, folder):
        self.folder, self.refused = folder, None

    def on_fit_start(self, state):
        from attnflex_lab.training.checkpoint import lock_directory

        try:
            with lock_directory(self.folder):
                self.refused = False
        except CheckpointDirError:
            self.refused = True


def test_fit_holds_its_checkpoint_folder_and_a_second_fit_into_it_stops_at_once(tmp_path):
    """Planted bug: only the CLI took the lock, so two fit() calls (a notebook and a script) into one
    folder both trained and lost each other's checkpoints; also the lock never given back."""
    import time

    from attnflex_lab.training.checkpoint import lock_directory

    folder = tmp_path / "ckpt"
    second_run = _TryTheLock(folder)
    fit(_model(), _data(), None, _cfg(folder, steps=10), loss_fn=_loss, callbacks=[second_run])
    assert second_run.refused is True, "fit trained without holding its checkpoint folder"
    with lock_directory(tmp_path / "busy"):             # another run holds this folder
        start = time.perf_counter()
        with pytest.raises(CheckpointDirError, match=r"checkpoint-dir.*busy.*in use by another run"):
            fit(_model(), _data(), None, _cfg(tmp_path / "busy", steps=10), loss_fn=_loss)
        assert time.perf_counter() - start < 1.0
    assert not list_checkpoints(tmp_path / "busy")
    with lock_directory(folder):                        # the finished run gave the folder back
        pass


ROOM_CHECK = """
import resource, sys, torch
from torch import nn
from torch.utils.data import TensorDataset
from attnflex_lab.training import TrainConfig, fit
from attnflex_lab.training.checkpoint import CheckpointDirError
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
x = torch.randn(64, 5)
steps = []
class Count:
    def on_step_end(self, state): steps.append(state.step)
cfg = TrainConfig(steps=5, batch_size=16, progress=False, checkpoint_dir=sys.argv[1])
try:
    fit(nn.Linear(5, 2), TensorDataset(x, (x.sum(1) > 0).long()), None, cfg, callbacks=[Count()],
        loss_fn=lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]))
except CheckpointDirError as err:
    print("refused after", len(steps), "steps:", err)
"""


def test_a_file_size_limit_stops_fit_before_training(tmp_path):
    """Planted bug: no room check, so the run trained every step, then its first save died with a
    traceback (EFBIG). Run in a subprocess: RLIMIT_FSIZE would bind pytest's own capture files."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", ROOM_CHECK, str(tmp_path / "ckpt")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip()
    assert line.startswith("refused after 0 steps:"), (line, done.stderr[-2000:])
    assert "checkpoint-dir" in line and "File too large" in line and "ulimit -f" in line, line
    assert not list((tmp_path / "ckpt").iterdir()) or not list_checkpoints(tmp_path / "ckpt")
