"""Graduated hints and the learner's progress file (``exercises/progress_file.py``)."""

import json

import pytest
import torch

import attnflex_lab as afl
from attnflex_lab import exercises
from attnflex_lab.__main__ import main
from attnflex_lab.exercises import ExerciseError, check, hint, progress_file

MY_LESSONS = ("00", "01", "02", "05", "06")


@pytest.fixture
def progress_path(tmp_path, monkeypatch):
    path = tmp_path / "learner" / "progress.json"
    monkeypatch.setenv(progress_file.PROGRESS_ENV, str(path))
    return path


def _stub(*args):
    raise NotImplementedError


def _status(report, exercise_id):
    return next(row for row in report.rows if row[0] == exercise_id)


def test_hints_come_one_at_a_time_then_point_to_the_solution(progress_path):
    hints = exercises.get("02.softmax_backward").graduated_hints()
    shown = [str(hint("02.softmax_backward")) for _ in range(len(hints) + 2)]
    for number, (text, expected) in enumerate(zip(shown, hints, strict=False), 1):
        assert f"hint {number} of {len(hints)}" in text and expected in text
    assert len(set(shown[:len(hints)])) == len(hints), "each call gives a new hint"
    for text in shown[len(hints):]:
        assert "no more hints" in text and "show_solution('02.softmax_backward')" in text
    assert _status(afl.progress(), "02.softmax_backward")[3] == len(hints), "hints read are counted, not past the last"


def test_every_exercise_of_these_lessons_has_graduated_hints():
    thin = [ex.id for ex in exercises.all_exercises()
            if ex.id.split(".")[0] in MY_LESSONS and len(ex.graduated_hints()) < 3]
    assert not thin, f"exercises with fewer than 3 graduated hints: {thin}"


def test_checks_record_attempted_then_passed_and_a_stub_records_nothing(progress_path):
    assert check("00.softmax_temperature", _stub).status == "not attempted"
    assert not progress_path.exists() or "00.softmax_temperature" not in progress_file.load()
    with pytest.raises(ExerciseError):
        check("00.softmax_temperature", lambda s, tau: torch.softmax(s, -1))
    assert _status(afl.progress(), "00.softmax_temperature")[1:3] == ("attempted", 1)
    check("00.softmax_temperature", lambda s, tau: torch.softmax(s / tau, -1))
    with pytest.raises(ExerciseError):  # a later slip does not take the pass away
        check("00.softmax_temperature", lambda s, tau: torch.softmax(s, -1))
    assert _status(afl.progress(), "00.softmax_temperature")[1:3] == ("passed", 3)
    stored = json.loads(progress_path.read_text())
    assert stored["version"] == 1 and stored["exercises"]["00.softmax_temperature"]["status"] == "passed"


def test_progress_lists_every_exercise_by_lesson(progress_path):
    check("01.masked_softmax", exercises.get("01.masked_softmax").solution)
    report = afl.progress()
    assert [row[0] for row in report.rows] == [ex.id for ex in exercises.all_exercises()]
    assert report.counts() == {"passed": 1, "attempted": 0, "not attempted": len(report.rows) - 1}
    text = str(report)
    assert "lesson 01" in text and "lesson 12" in text and str(progress_path) in text
    assert "01.masked_softmax" in report._repr_html_()


def test_the_cli_prints_the_same_table(progress_path, capsys):
    check("06.mfu", exercises.get("06.mfu").solution)
    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "06.mfu" in line)
    assert "passed" in line and "1 passed" in out
    other = progress_path.parent / "other.json"
    assert main(["progress", "--file", str(other)]) == 0
    assert "0 passed" in capsys.readouterr().out


def test_writes_are_atomic_and_a_broken_file_is_set_aside(progress_path, monkeypatch):
    progress_file.update("01.attention_pool", outcome="attempted")
    before = progress_path.read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(progress_file.json, "dump", crash)
    with pytest.warns(UserWarning, match="could not save progress"):
        progress_file.update("01.attention_pool", outcome="passed")
    assert progress_path.read_text() == before, "a failed write leaves the old file whole"
    assert list(progress_path.parent.iterdir()) == [progress_path], "no temporary file is left behind"
    monkeypatch.undo()
    progress_path.write_text("{ half a file")
    with pytest.warns(UserWarning, match="moved to"):
        assert progress_file.load(progress_path) == {}
    assert progress_path.with_name("progress.json.bad").read_text() == "{ half a file"


def test_update_refuses_an_unknown_outcome(progress_path):
    with pytest.raises(ValueError, match="outcome"):
        progress_file.update("00.softmax_temperature", outcome="done")
