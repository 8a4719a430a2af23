"""Experiment tracking for ``fit()``: History's records written to disk while training runs.

    fit(model, train, val, cfg, loss_fn=loss, callbacks=[CSVLogger("runs/a"), TensorBoardLogger("runs/a")])

- ``CSVLogger(dir)`` writes ``dir/steps.csv`` (one row per History step record: step, loss, lr,
  grad_norm, the loss_fn's extras) and ``dir/evals.csv`` (one row per evaluation). Each row is
  appended as soon as History gets it, so ``tail -f`` works during a run. At the start of a session
  both files are rewritten from History: empty for a fresh run, and after a resume exactly the
  records up to the checkpoint (rows an interrupted session wrote after it are dropped).
- ``TensorBoardLogger(dir)`` writes the same numbers as TensorBoard scalars: ``train/<key>`` for
  step records, ``eval/<key>`` for evaluations. It needs the optional ``tensorboard`` package
  (``pip install tensorboard``, or the lab's ``tracking`` extra); without it, constructing one
  raises an ImportError that says so. A session's event file tells TensorBoard to hide the values
  that older files in the folder hold for later steps (``purge_step``), so a resumed run shows one
  line, and a fresh run in a used folder shows only itself.

Both write on rank 0 only and keep no state of their own: History is the record, they are copies.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

from .callbacks import TrainState

TENSORBOARD_HINT = ("pip install tensorboard  (or: pip install 'attnflex-lab[tracking]'); "
                    "the CSV logs need nothing")


def _float_or_text(value) -> str:
    return repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


class CSVLogger:
    """Write History's step and eval records to ``log_dir/steps.csv`` and ``log_dir/evals.csv``."""

    FILES = {"steps": "steps.csv", "evals": "evals.csv"}

    def __init__(self, log_dir: str | os.PathLike):
        self.log_dir = Path(log_dir)
        self._written = {kind: 0 for kind in self.FILES}       # records of History already on disk
        self._fields: dict[str, list[str]] = {kind: [] for kind in self.FILES}

    def path(self, kind: str) -> Path:
        return self.log_dir / self.FILES[kind]

    def on_fit_start(self, state: TrainState) -> None:
        if state.rank != 0:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for kind in self.FILES:
            self._rewrite(kind, getattr(state.history, kind))

    def on_step_end(self, state: TrainState) -> None:
        if state.rank == 0:
            self._append("steps", state.history.steps)

    def on_eval(self, state: TrainState, metrics: dict) -> None:
        if state.rank == 0:
            self._append("evals", state.history.evals)

    def _append(self, kind: str, records: list[dict]) -> None:
        new = records[self._written[kind]:]
        if not new:
            return
        if any(key not in self._fields[kind] for record in new for key in record):
            self._rewrite(kind, records)  # a key no row had yet (an extra that appeared): widen the header
            return
        with self.path(kind).open("a", newline="") as f:
            self._writer(f, kind).writerows(self._row(r) for r in new)
        self._written[kind] = len(records)

    def _rewrite(self, kind: str, records: list[dict]) -> None:
        fields = []
        for record in records:
            fields += [key for key in record if key not in fields]
        self._fields[kind] = fields
        with self.path(kind).open("w", newline="") as f:
            if fields:
                writer = self._writer(f, kind)
                writer.writeheader()
                writer.writerows(self._row(r) for r in records)
        self._written[kind] = len(records)

    def _writer(self, f, kind: str) -> csv.DictWriter:
        return csv.DictWriter(f, fieldnames=self._fields[kind], restval="")

    @staticmethod
    def _row(record: dict) -> dict:
        # repr keeps every digit, so float(cell) == the History value exactly
        return {key: _float_or_text(value) for key, value in record.items()}


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # torch raises this when the tensorboard package is missing
        raise ImportError(f"TensorBoardLogger needs the tensorboard package, which is not installed "
                          f"here: {TENSORBOARD_HINT}") from err
    return SummaryWriter


class TensorBoardLogger:
    """Write History's records as TensorBoard scalars in ``log_dir`` (``train/loss``, ``eval/...``)."""

    def __init__(self, log_dir: str | os.PathLike, *, flush_secs: int = 10):
        self._summary_writer = _summary_writer_class()  # fails now, before any training, if missing
        self.log_dir = Path(log_dir)
        self.flush_secs = flush_secs
        self.writer = None
        self._written = {"steps": 0, "evals": 0}

    def on_fit_start(self, state: TrainState) -> None:
        if state.rank != 0:
            return
        # Hide what older event files here say about later steps: after a resume, the steps an
        # interrupted session logged past its checkpoint; in a used folder, the whole older run.
        # (Only then: TensorBoard's reader reports every purge, even of nothing.)
        older = state.step > 0 or any(self.log_dir.glob("*tfevents*"))
        self.writer = self._summary_writer(log_dir=str(self.log_dir), flush_secs=self.flush_secs,
                                           purge_step=state.step + 1 if older else None)
        self._written = {"steps": len(state.history.steps), "evals": len(state.history.evals)}

    def on_step_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self._write("steps", "train", state.history.steps)

    def on_eval(self, state: TrainState, metrics: dict) -> None:
        if self.writer is not None:
            self._write("evals", "eval", state.history.evals)

    def on_fit_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _write(self, kind: str, prefix: str, records: list[dict]) -> None:
        for record in records[self._written[kind]:]:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{prefix}/{key}", value, global_step=record["step"])
        self._written[kind] = len(records)


def log_dir_callbacks(log_dir: str | os.PathLike) -> list:
    """What ``--log-dir`` adds: CSV logs always, TensorBoard logs when tensorboard is installed
    (otherwise a note on stderr says how to get them)."""
    callbacks = [CSVLogger(log_dir)]
    try:
        callbacks.append(TensorBoardLogger(log_dir))
    except ImportError:
        print(f"note: no TensorBoard logs in {log_dir} (tensorboard is not installed): {TENSORBOARD_HINT}",
              file=sys.stderr)
    return callbacks
