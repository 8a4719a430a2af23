"""`python -m attnflex_lab train`: one JSON line, and a SIGKILLed run resumes to the same weights."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnflex_lab import recipes
from attnflex_lab.__main__ import main
from attnflex_lab.training.checkpoint import list_checkpoints

from .single_thread import one_thread_per_module  # noqa: F401 (autouse: one torch thread)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ATTNFLEX_PROFILE": "smoke"}
FAST = ["--task", "digits", "--profile", "smoke", "--threads", "1", "--no-progress"]


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "attnflex_lab", "train", *args], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def _json_line(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {lines}"
    return json.loads(lines[0])


def test_registry_knows_the_builtin_recipes_and_rejects_unknown_ones():
    assert {"digits", "digits_mean", "dates"} <= set(recipes.names())
    with pytest.raises(KeyError, match="known recipes: .*digits"):
        recipes.get("nope")
    with pytest.raises(ValueError, match="registered twice"):
        recipes.register(recipes.get("digits"))
    run = recipes.build("digits", profile_name="smoke", seed=3, steps=7)
    assert run.cfg.steps == 7 and run.cfg.seed == 3
    with pytest.raises(TypeError, match="unknown TrainConfig fields"):
        recipes.build("digits", profile_name="smoke", stepz=7)


def _main(capsys, *args) -> tuple[int, str, str]:
    """``python -m attnflex_lab train ARGS`` in this process (no interpreter start): (status, out, err)."""
    status = main(["train", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


IN_PROCESS = ["--task", "digits", "--profile", "smoke", "--no-progress"]  # no --threads: it is process-wide


def test_cli_prints_one_json_line_and_the_bar_on_stderr(capsys):
    status, out, err = _main(capsys, "--task", "dates", "--profile", "smoke", "--steps", "6")
    assert status == 0, err
    line = _json_line(out)
    for key in ("exact_match", "alignment_accuracy", "alignment_exact", "final_loss", "steps",
                "seconds", "weights_sha256"):
        assert key in line
    assert line["steps"] == 6 and line["task"] == "dates" and len(line["weights_sha256"]) == 64
    assert "6/6" in err  # the progress bar went to stderr


def test_cli_rejects_an_unknown_task(capsys):
    status, _, err = _main(capsys, "--task", "nope")
    assert status != 0 and "invalid choice" in err


def test_sigkill_mid_run_then_resume_gives_the_same_weights(tmp_path, capsys):
    # the kill comes at the first checkpoint (step 20), 100 steps (seconds) before the run would finish
    steps = ["--steps", "120", "--checkpoint-every", "20"]
    # the uninterrupted run in this process (one torch thread here too): one interpreter start fewer
    status, out, err = _main(capsys, *FAST, *steps, "--checkpoint-dir", str(tmp_path / "full"))
    assert status == 0, err
    expected = _json_line(out)

    ckpt_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "attnflex_lab", "train", *FAST, *steps,
                             "--checkpoint-dir", str(ckpt_dir)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list_checkpoints(ckpt_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert out == b""  # killed before it could print its final line
    last = list_checkpoints(ckpt_dir)[-1]
    assert int(last.stem.split("_")[1]) < 120

    resumed = _cli(*FAST, *steps, "--checkpoint-dir", str(ckpt_dir), "--resume", str(ckpt_dir))
    assert resumed.returncode == 0, resumed.stderr
    got = _json_line(resumed.stdout)
    assert got["weights_sha256"] == expected["weights_sha256"]
    assert got["test_accuracy"] == expected["test_accuracy"] and got["steps"] == 120


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_cli_refuses_a_used_checkpoint_dir_unless_told_to_resume_or_overwrite(tmp_path, capsys):
    """Planted bug: a fresh run in a folder holding an older run's later steps had its own new
    checkpoints pruned, and --resume DIR then went on from the old run."""
    ckpt = tmp_path / "ckpt"
    status, _, err = _main(capsys, *IN_PROCESS, "--steps", "3", "--checkpoint-dir", str(ckpt))
    assert status == 0, err
    before = _snapshot(ckpt)

    status, out, err = _main(capsys, *IN_PROCESS, "--steps", "2", "--checkpoint-dir", str(ckpt))
    assert status != 0 and out == ""
    assert str(ckpt) in err and "--resume" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert _snapshot(ckpt) == before  # refusing touched nothing

    status, _, err = _main(capsys, *IN_PROCESS, "--steps", "2", "--checkpoint-dir", str(ckpt), "--overwrite")
    assert status == 0, err
    assert [p.name for p in list_checkpoints(ckpt)] == ["step_00000002.pt"]

    status, _, err = _main(capsys, *IN_PROCESS, "--checkpoint-dir", str(ckpt), "--overwrite", "--resume", str(ckpt))
    assert status == 2 and "use one" in err
