"""Checkpoints: atomic, weights_only, exact resume, and clear refusals of bad files."""

import os

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from attnflex_lab.training import TrainConfig, fit
from attnflex_lab.training.callbacks import RecordAttention
from attnflex_lab.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
    weights_sha256,
)


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
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(text)
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
