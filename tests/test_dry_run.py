"""The dry run's two pieces (scripts/dry_run.py, make test-gpu-dry): training loops cut to a few steps
by ATTNFLEX_DRY_RUN_STEPS, and a lesson's asserts made soft so that only crashes stop it."""

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from attnflex_lab.elasticity.experiment import SwitchConfig, run_schedule
from attnflex_lab.exercises import lesson05
from attnflex_lab.perf.flops import time_steps
from attnflex_lab.profiles import DRY_RUN_ENV, run_steps
from attnflex_lab.training import TrainConfig, fit
from attnflex_lab.training.lr_range import lr_range_test
from tests.test_engine_regressions import _data, _loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import dry_run  # noqa: E402
import dry_run_asserts  # noqa: E402


def test_run_steps_is_every_step_unless_a_dry_run_caps_it(monkeypatch):
    monkeypatch.delenv(DRY_RUN_ENV, raising=False)
    assert run_steps(2_000) == 2_000
    monkeypatch.setenv(DRY_RUN_ENV, " 3 ")
    assert (run_steps(2_000), run_steps(2)) == (3, 2)


@pytest.mark.parametrize("raw", ["0", "-1", "two", "2.5"])
def test_a_dry_run_step_count_that_is_not_one_is_refused_by_name(monkeypatch, raw):
    monkeypatch.setenv(DRY_RUN_ENV, raw)
    with pytest.raises(ValueError, match=DRY_RUN_ENV):
        run_steps(10)


def test_the_engine_runs_the_dry_run_steps_then_evaluates_as_at_the_end(monkeypatch):
    monkeypatch.setenv(DRY_RUN_ENV, "3")
    cfg = TrainConfig(steps=50, batch_size=16, lr=1e-2, progress=False, eval_every=20)
    history = fit(nn.Linear(4, 2), _data(), _data(32), cfg, loss_fn=_loss)
    assert [r["step"] for r in history.steps] == [1, 2, 3]
    assert [r["step"] for r in history.evals] == [3]        # the last step's evaluation still runs
    assert cfg.steps == 50                                  # the config is not changed


def test_the_lessons_own_training_loop_is_cut_too(monkeypatch):
    """Lesson 05's model answer (what the lesson runs while the learner's loop is a stub)."""
    monkeypatch.setenv(DRY_RUN_ENV, "2")
    model = nn.Sequential(nn.Embedding(5, 5))
    losses = lesson05.train_loop(model, lambda: (torch.randint(0, 5, (2, 3)), torch.randint(0, 5, (2, 3))), 40, 1e-2)
    assert len(losses) == 2


def test_timed_training_steps_are_cut_too(monkeypatch):
    """Lesson 06 times 20 steps of a GPT at the gpu profile's sizes: minutes each on a CPU."""
    monkeypatch.setenv(DRY_RUN_ENV, "2")
    calls = []
    time_steps(lambda: calls.append(1), 20, warmup=5)
    assert len(calls) == 4                                  # 2 warm-up + 2 timed


def test_a_dry_run_range_test_keeps_the_three_steps_a_slope_needs(monkeypatch):
    """Lesson 09's LR range test: cut to 2 steps it had no slope to report (the dry run found it)."""
    monkeypatch.setenv(DRY_RUN_ENV, "2")
    sweep = lr_range_test(nn.Linear(4, 2), _data(), _loss, steps=400, batch_size=16)
    assert len(sweep.lrs) == 3 and sweep.lrs[0] <= sweep.steepest_lr <= sweep.lrs[-1]


def test_a_dry_run_phase_still_lasts_as_long_as_its_switch_metrics_need(monkeypatch):
    """Lesson 08's phases: cut to 2 steps, the switch cost's 10-step windows had no room (the dry run
    found it); a dry-run phase lasts min_phase_steps."""
    monkeypatch.setenv(DRY_RUN_ENV, "2")
    run = run_schedule(SwitchConfig(schedule=(0, 1), min_phase_steps=30, max_phase_steps=300, probe_size=16))
    assert len(run.acc) == 60 and len(run.switches) == 1


def _run_softened(source: str, log: Path) -> dict:
    namespace = {dry_run_asserts.RECORD_NAME: dry_run_asserts.recorder(str(log))}
    exec(compile(dry_run_asserts.soften(source), "<cell>", "exec"), namespace)
    return namespace


def test_a_failed_assert_is_recorded_with_its_message_and_the_cell_goes_on(tmp_path):
    log = tmp_path / "asserts.jsonl"
    ns = _run_softened("acc = 0.3\nassert acc > 0.9, f'accuracy {acc}'\nafter = 1\n"
                       "def check(x):\n    assert x, 'inside a function'\ncheck(0)\n", log)
    assert ns["after"] == 1
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records == [{"assert": "assert acc > 0.9", "message": "accuracy 0.3"},
                       {"assert": "assert x", "message": "inside a function"}]


def test_a_passing_assert_records_nothing_and_builds_no_message(tmp_path):
    log = tmp_path / "asserts.jsonl"
    _run_softened("assert 1 + 1 == 2, 1 / 0\nassert True\n", log)   # the message would raise if built
    assert not log.exists()


def test_other_errors_still_raise(tmp_path):
    with pytest.raises(RuntimeError, match="shape"):
        _run_softened("assert True\nraise RuntimeError('shape mismatch')\n", tmp_path / "asserts.jsonl")


def test_in_gpu_the_lessons_that_need_the_memory_run_last_and_alone():
    """Planted bug: the lessons all in one pool again (lesson 06's kernel beside another ran this
    24 GiB machine out of memory)."""
    lessons = [Path(name) for name in ("05_a.ipynb", "06_training_on_a_gpu.ipynb", "07_b.ipynb")]
    assert dry_run.schedule(lessons, "gpu", 2) == [([lessons[0], lessons[2]], 2), ([lessons[1]], 1)]
    assert dry_run.schedule(lessons, "cpu", 2) == [(lessons, 2)]         # small sizes: all together
    assert dry_run.schedule(lessons[1:2], "gpu", 3) == [([lessons[1]], 1)]
    assert set(dry_run.RUN_ALONE) <= {nb.name for nb in dry_run.find_notebooks()}   # not renamed away
