"""The learner's progress: which exercises passed, which were tried, how many hints were read.

Stored in a small JSON file the learner owns, ``~/.attnflex_lab/progress.json`` unless
``$ATTNFLEX_PROGRESS`` names another path (the tests point it at a temporary file). Every write goes
to a temporary file in the same folder first and replaces the old file in one step (``os.replace``),
so an interrupted kernel never leaves half a file. The file looks like::

    {"version": 1, "exercises": {"02.softmax_backward": {"status": "passed", "attempts": 2, "hints": 1}}}

``status`` is "attempted" after a wrong answer and "passed" once a check passes (a later wrong try
does not take a pass away). A file that cannot be read is set aside as ``progress.json.bad`` with a
warning, never silently overwritten.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

PROGRESS_ENV = "ATTNFLEX_PROGRESS"
VERSION = 1
STATUSES = ("passed", "attempted", "not attempted")


def progress_path() -> Path:
    """Where progress is kept: ``$ATTNFLEX_PROGRESS``, else ``~/.attnflex_lab/progress.json``."""
    return Path(os.environ.get(PROGRESS_ENV) or Path.home() / ".attnflex_lab" / "progress.json")


def load(path: Path | None = None) -> dict:
    """The stored records, ``{exercise_id: {"status", "attempts", "hints"}}``; empty if none yet."""
    path = Path(path) if path else progress_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("exercises"), dict):
            raise ValueError("no 'exercises' table")
        return data["exercises"]
    except (ValueError, OSError) as err:
        backup = path.with_name(path.name + ".bad")
        os.replace(path, backup)
        warnings.warn(f"could not read the progress file {path} ({err}); it was moved to {backup} "
                      "and progress starts afresh", stacklevel=2)
        return {}


def _save(records: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": VERSION, "exercises": records}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update(exercise_id: str, *, outcome: str | None = None, hint_shown: bool = False,
           path: Path | None = None) -> dict:
    """Record one check (``outcome`` "passed" or "attempted") or one hint read; returns the record.

    A progress file that cannot be written costs a warning, never the learner's check.
    """
    if outcome not in (None, "passed", "attempted"):
        raise ValueError(f"outcome must be 'passed', 'attempted' or None, got {outcome!r}")
    path = Path(path) if path else progress_path()
    records = load(path)
    record = records.setdefault(exercise_id, {"status": "not attempted", "attempts": 0, "hints": 0})
    if outcome:
        record["attempts"] += 1
        if record["status"] != "passed":
            record["status"] = outcome
    if hint_shown:
        record["hints"] += 1
    try:
        _save(records, path)
    except OSError as err:
        warnings.warn(f"could not save progress to {path}: {err}", stacklevel=2)
    return record


@dataclass
class Progress:
    """Every registered exercise with its status, grouped by lesson; prints as a table."""
    rows: list[tuple[str, str, int, int]]   # (exercise id, status, attempts, hints read)
    path: Path

    def counts(self) -> dict[str, int]:
        return {status: sum(row[1] == status for row in self.rows) for status in STATUSES}

    def by_lesson(self) -> dict[str, list[tuple[str, str, int, int]]]:
        lessons: dict[str, list] = {}
        for row in self.rows:
            lessons.setdefault(row[0].split(".")[0], []).append(row)
        return lessons

    def __str__(self) -> str:
        counts = self.counts()
        lines = [f"Progress ({counts['passed']} passed, {counts['attempted']} attempted, "
                 f"{counts['not attempted']} not attempted of {len(self.rows)}; kept in {self.path})"]
        for lesson, rows in self.by_lesson().items():
            lines.append(f"lesson {lesson}")
            lines += [f"  {ex_id:<34} {status:<14} attempts {attempts:<3} hints {hints}"
                      for ex_id, status, attempts, hints in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        mark = {"passed": "✅", "attempted": "🟡", "not attempted": "⬜"}
        body = "".join(f"<tr><td>{html.escape(ex_id)}</td><td>{mark[status]} {status}</td>"
                       f"<td>{attempts}</td><td>{hints}</td></tr>" for ex_id, status, attempts, hints in self.rows)
        return (f"<p>{html.escape(str(self).splitlines()[0])}</p><table><tr><th>exercise</th><th>status</th>"
                f"<th>attempts</th><th>hints</th></tr>{body}</table>")


def progress(path: Path | None = None) -> Progress:
    """Every exercise by lesson as passed / attempted / not attempted (``afl.progress()``)."""
    from . import all_exercises

    path = Path(path) if path else progress_path()
    records = load(path)
    rows = []
    for ex in all_exercises():
        record = records.get(ex.id, {})
        rows.append((ex.id, record.get("status", "not attempted"), int(record.get("attempts", 0)),
                     int(record.get("hints", 0))))
    return Progress(rows, path)


__all__ = ["PROGRESS_ENV", "Progress", "load", "progress", "progress_path", "update"]
