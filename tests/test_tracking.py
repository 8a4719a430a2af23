"""Tracking: the CSV and TensorBoard files that fit's loggers write hold exactly History's numbers."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from attnflex_lab.training import CSVLogger, History, TensorBoardLogger, TrainConfig, TrainState, fit
from attnflex_lab.training.tracking import log_dir_callbacks

ROOT = Path(__file__).resolve().parents[1]
# tensorboard is in the dev extra; without it only the tests that read event files are skipped
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed (pip install tensorboard)")


def _data(n=128, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)  # (N, 5)
    y = (x[:, 0] - x[:, 2] > 0).long()    # (N,)
    return TensorDataset(x, y)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))


def _loss(model, batch):
    x, y = batch
    logits = model(x)  # (B, 2)
    loss = nn.functional.cross_entropy(logits, y)
    return loss, {"batch_acc": (logits.argmax(-1) == y).float().mean()}


def _acc(model, data):
    x, y = data.tensors
    return {"accuracy": (model(x).argmax(-1) == y).float().mean().item()}


def _cfg(**kw):
    return TrainConfig(**{"steps": 12, "batch_size": 16, "lr": 3e-2, "eval_every": 4, "progress": False, **kw})


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _as_tensorboard(records: list[dict], prefix: str) -> dict[str, list[tuple[int, float]]]:
    """History's records as TensorBoard stores them: one series per key, values in float32."""
    out: dict[str, list] = {}
    for record in records:
        for key, value in record.items():
            if key != "step":
                out.setdefault(f"{prefix}/{key}", []).append((record["step"], float(np.float32(value))))
    return out


@needs_tensorboard
def test_csv_and_tensorboard_hold_exactly_the_history(tmp_path):
    cfg = _cfg(log_every=2)
    history = fit(_model(), _data(), _data(64, seed=1), cfg, loss_fn=_loss, eval_fn=_acc,
                  callbacks=[CSVLogger(tmp_path), TensorBoardLogger(tmp_path)])
    assert len(history.steps) == 6 and len(history.evals) == 3  # log_every=2 of 12; eval every 4
    assert _read_csv(tmp_path / "steps.csv") == history.steps   # every column, every digit
    assert _read_csv(tmp_path / "evals.csv") == history.evals
    expected = {**_as_tensorboard(history.steps, "train"), **_as_tensorboard(history.evals, "eval")}
    assert set(expected) == {"train/loss", "train/lr", "train/grad_norm", "train/batch_acc", "eval/accuracy"}
    assert _scalars(tmp_path) == expected


@needs_tensorboard
def test_a_resumed_run_logs_each_step_once_and_matches_its_history(tmp_path):
    logs, ckpt = tmp_path / "logs", tmp_path / "ckpt"
    cfg = _cfg(checkpoint_dir=str(ckpt), checkpoint_every=4, checkpoint_keep=0)
    # the "interrupted" session ran to the end and logged past its step-4 checkpoint
    fit(_model(), _data(), _data(64, seed=1), cfg, loss_fn=_loss, eval_fn=_acc,
        callbacks=[CSVLogger(logs), TensorBoardLogger(logs)])
    history = fit(_model(), _data(), _data(64, seed=1), cfg, loss_fn=_loss, eval_fn=_acc,
                  resume=ckpt / "step_00000004.pt", callbacks=[CSVLogger(logs), TensorBoardLogger(logs)])
    steps = _read_csv(logs / "steps.csv")
    assert [r["step"] for r in steps] == list(range(1, 13))
    assert steps == history.steps and _read_csv(logs / "evals.csv") == history.evals
    scalars = _scalars(logs)
    assert [s for s, _ in scalars["train/loss"]] == list(range(1, 13))
    assert scalars["train/loss"] == _as_tensorboard(history.steps, "train")["train/loss"]


def test_csv_widens_its_header_when_a_new_key_appears(tmp_path):
    logger, state = CSVLogger(tmp_path), _state(History())
    logger.on_fit_start(state)
    state.history.steps.append({"step": 1, "loss": 0.5})
    logger.on_step_end(state)
    state.history.steps.append({"step": 2, "loss": 0.25, "aux": 3.0})
    logger.on_step_end(state)
    with (tmp_path / "steps.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"step": "1.0", "loss": "0.5", "aux": ""}, {"step": "2.0", "loss": "0.25", "aux": "3.0"}]


def _state(history: History, rank: int = 0) -> TrainState:
    model = nn.Linear(1, 1)
    return TrainState(step=0, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                      history=history, cfg=TrainConfig(steps=4, progress=False), rank=rank)


@needs_tensorboard
def test_only_rank_zero_writes(tmp_path):
    history = History(steps=[{"step": 1, "loss": 1.0}], evals=[{"step": 1, "accuracy": 0.5}])
    state = _state(history, rank=1)
    for logger in (CSVLogger(tmp_path / "csv"), TensorBoardLogger(tmp_path / "tb")):
        logger.on_fit_start(state)
        logger.on_step_end(state)
        logger.on_eval(state, {"accuracy": 0.5})
        getattr(logger, "on_fit_end", lambda s: None)(state)
    assert not (tmp_path / "csv").exists() and not (tmp_path / "tb").exists()


def test_without_tensorboard_the_message_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "tensorboard" or m.startswith(("tensorboard.",
                                                                                "torch.utils.tensorboard"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    with pytest.raises(ImportError, match=r"pip install tensorboard"):
        TensorBoardLogger(tmp_path)
    callbacks = log_dir_callbacks(tmp_path)  # the CLI's --log-dir keeps the CSV logs
    assert [type(cb) for cb in callbacks] == [CSVLogger]
    assert "pip install tensorboard" in capsys.readouterr().err


@needs_tensorboard
def test_cli_log_dir_writes_csv_and_events_matching_its_json_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATTNFLEX_PROFILE": "smoke"}
    done = subprocess.run([sys.executable, "-m", "attnflex_lab", "train", "--task", "digits", "--profile",
                           "smoke", "--steps", "6", "--threads", "1", "--no-progress",
                           "--log-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    steps = _read_csv(tmp_path / "steps.csv")
    assert steps[-1]["step"] == 6 and steps[-1]["loss"] == line["final_loss"]
    scalars = _scalars(tmp_path)
    assert scalars["train/loss"][-1] == (6, float(np.float32(line["final_loss"])))
    evals = _read_csv(tmp_path / "evals.csv")
    assert evals and _as_tensorboard(evals, "eval") == \
        {tag: v for tag, v in scalars.items() if tag.startswith("eval/")}
