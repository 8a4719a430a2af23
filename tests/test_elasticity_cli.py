"""The flex CLI and run_switching: files written, one JSON line last on stdout, clear errors."""

import csv
import json
import math

import pytest

from attnflex_lab.__main__ import main
from attnflex_lab.elasticity.switching import SWITCH_METRICS, run_switching


def _last_json_line(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.strip()]
    return json.loads(lines[-1])


def test_flex_weights_smoke_writes_csv_json_and_ends_with_one_json_line(tmp_path, capsys):
    assert main(["flex", "--setting", "weights", "--profile", "smoke", "--seeds", "2",
                 "--families", "pointer", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    summary = _last_json_line(captured.out)
    assert len([ln for ln in captured.out.splitlines() if ln.strip()]) == 1, "stdout holds only the JSON line"
    assert "setting A runs" in captured.err, "the tqdm bar goes to stderr"
    fam = summary["families"]["pointer"]
    for metric in (*SWITCH_METRICS, "savings"):
        assert set(fam[metric]) == {"mean", "ci95"}
    assert summary["seeds"] == 2 and summary["setting"] == "weights"
    assert json.loads((tmp_path / "flex_weights_summary.json").read_text()) == summary
    rows = list(csv.DictReader(open(tmp_path / "flex_weights_curves.csv")))
    assert rows and {r["seed"] for r in rows} == {"0", "1"} and {"step", "accuracy", "phase"} <= set(rows[0])


def test_flex_context_smoke_reports_model_and_observer_by_lag(tmp_path, capsys):
    assert main(["flex", "--setting", "context", "--profile", "smoke", "--seeds", "1", "--out", str(tmp_path)]) == 0
    summary = _last_json_line(capsys.readouterr().out)
    assert summary["trials_since_switch"] == list(range(10))
    assert len(summary["model_accuracy"]) == len(summary["observer_accuracy"]) == 10
    excess = [o - m for m, o in zip(summary["model_accuracy"], summary["observer_accuracy"], strict=True)]
    assert summary["model_excess_error"] == pytest.approx(excess, abs=2e-4)
    assert 0 <= summary["model_perseverative_rate"] <= 1
    # after the switch trial's feedback the optimal observer's errors are still mostly old-rule answers
    # (a card often fits the old rule too), far above the 1/3 share of errors spread evenly
    assert summary["observer_perseverative_rate"] > 0.5
    assert 0 <= summary["observer_set_loss_rate"] <= summary["model_set_loss_rate"] + 0.2 <= 1.2
    assert (tmp_path / "flex_context_curves.csv").exists()


def test_flex_shifts_smoke_ends_with_the_issue_shaped_json_line(tmp_path, capsys):
    assert main(["flex", "--setting", "shifts", "--profile", "smoke", "--seeds", "2", "--families", "mlp",
                 "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = [ln for ln in captured.out.splitlines() if ln.strip()]
    assert len(lines) == 1 and "ID/ED runs" in captured.err
    summary = json.loads(lines[0])
    assert summary["setting"] == "shifts" and summary["seeds"] == 2 and set(summary["results"]) == {"mlp"}
    cells = summary["results"]["mlp"]
    assert list(cells) == ["ID", "ED", "reversal"]
    for cell in cells.values():
        assert set(cell) == {"mean", "ci"} and len(cell["ci"]) == 2 and cell["ci"][0] <= cell["mean"] <= cell["ci"][1]
    rows = list(csv.DictReader(open(tmp_path / "flex_shifts_curves.csv")))
    assert {r["stage"] for r in rows} == {"acquisition", "ID", "ED", "reversal"}
    assert {r["seed"] for r in rows} == {"0", "1"}


@pytest.mark.parametrize("argv, message", [
    (["--setting", "shifts", "--families", "pointer_cued"], "unknown families"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--families", "transformer"], "unknown families"),
    (["--setting", "context", "--families", "mlp"], "weights or shifts only"),
    (["--setting", "both"], "invalid choice"),
])
def test_flex_bad_arguments(argv, message, capsys):
    assert main(["flex", *argv]) == 2  # one line `error: ...` (tests/test_cli_errors.py checks its form)
    assert message in capsys.readouterr().err


def test_run_switching_bad_input():
    with pytest.raises(ValueError, match="setting"):
        run_switching("both")
    with pytest.raises(ValueError, match="unknown families"):
        run_switching("weights", profile_name="smoke", seeds=1, families=("lstm",))
    with pytest.raises(ValueError, match="at least one seed"):
        run_switching("weights", profile_name="smoke", seeds=[])


def test_run_switching_returns_the_dataclass_with_curves():
    res = run_switching("weights", profile_name="smoke", seeds=[3], families=("pointer",),
                        max_phase_steps=30, hold_steps=0)
    assert res.setting == "weights" and res.seeds == [3] and len(res.runs) == 1
    run = res.runs[0]
    assert len(res.curves) == len(run.acc) and len(run.switches) == 3
    assert res.summary["families"]["pointer"]["switch_cost"]["ci95"] is None  # one seed: no interval
    assert not math.isnan(res.summary["families"]["pointer"]["switch_cost"]["mean"])
    # one seed: each summary mean is the mean over *all three* switches (a dropped switch changes it)
    for metric in SWITCH_METRICS:
        values = [s[metric] for s in run.switches if not math.isnan(s[metric])]
        assert res.summary["families"]["pointer"][metric]["mean"] == pytest.approx(sum(values) / len(values),
                                                                                  abs=1e-4), metric
