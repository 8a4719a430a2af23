"""Every user error of train, serve, flex, bench and doctor: one line ``error: ...``, exit 2.

Run in-process through ``__main__.main`` (what ``python -m attnflex_lab`` calls), so each case
costs milliseconds; each refusal comes before any data, model or training is built.
"""

from __future__ import annotations

import pytest
import torch

from attnflex_lab import recipes
from attnflex_lab.__main__ import main
from attnflex_lab.training.checkpoint import latest_checkpoint, lock_directory

from .single_thread import one_thread_per_module  # noqa: F401 (autouse: one torch thread)

pytestmark = pytest.mark.timeout(60)
TRAIN = ["train", "--task", "sort", "--profile", "smoke", "--no-progress"]


@pytest.fixture(scope="module")
def sort_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sort")
    recipes.train_recipe("sort", profile_name="smoke", steps=1, checkpoint_dir=str(folder),
                         progress=False)
    return latest_checkpoint(folder)


def one_line_error(capsys, argv: list[str], *words: str) -> str:
    """Run the command; it must return 2 and print exactly one stderr line, with every word."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("flags, words", [
    (["--steps", "-5"], ["--steps", "1..1000000000", "-5"]),
    (["--steps", "0"], ["--steps", "1.."]),
    (["--checkpoint-every", "-1"], ["--checkpoint-every", "0.."]),
    (["--seed", "-1"], ["--seed", "0..4294967295"]),
    (["--threads", "0"], ["--threads", "1..1024"]),
    (["--device", "banana"], ["--device", "banana", "cpu, cuda"]),
    (["--steps", "many"], ["--steps", "invalid int value"]),
    (["--resume", "/no/such/file.pt"], ["--resume", "does not exist"]),
    (["--init-from", "/no/such/file.pt"], ["--init-from", "does not exist"]),
])
def test_train_refuses_bad_flags_in_one_line(capsys, flags, words):
    one_line_error(capsys, [*TRAIN, *flags], *words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_refuses_cuda_where_there_is_none(capsys):
    one_line_error(capsys, [*TRAIN, "--device", "cuda"], "--device cuda", "not available")


def test_train_refuses_a_bogus_profile_variable(capsys, monkeypatch):
    monkeypatch.setenv("ATTNFLEX_PROFILE", "bogus")
    one_line_error(capsys, ["train", "--task", "sort"], "ATTNFLEX_PROFILE", "smoke, cpu, gpu")


class _Payload:
    def __reduce__(self):
        return (print, ("ran",))


def test_train_refuses_unusable_resume_files_in_one_line(capsys, tmp_path, sort_checkpoint):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(sort_checkpoint.read_bytes()[:1000])
    evil = tmp_path / "evil.pt"
    torch.save({"format": "attnflex-lab-checkpoint", "version": 1, "x": _Payload()}, evil)
    one_line_error(capsys, [*TRAIN, "--resume", str(empty)], "--resume", "empty.pt")
    one_line_error(capsys, [*TRAIN, "--resume", str(cut)], "--resume", "truncated")
    one_line_error(capsys, [*TRAIN, "--resume", str(evil)], "--resume", "refused", "nothing in it was run")
    one_line_error(capsys, [*TRAIN, "--init-from", str(cut)], "--init-from", "truncated")
    one_line_error(capsys, [*TRAIN, "--resume", str(tmp_path)], "--resume", "no checkpoint")


def test_train_compares_the_recipe_on_resume(capsys, sort_checkpoint):
    """Planted bug: a sort checkpoint resumed as a reverse run was accepted (same network)."""
    line = one_line_error(capsys, ["train", "--task", "reverse", "--profile", "smoke", "--resume",
                                   str(sort_checkpoint)], "--resume", "sort/smoke", "reverse/smoke")
    assert "--task sort --profile smoke" in line


def test_train_checks_its_folders_before_training(capsys, tmp_path):
    """Planted bugs: the lock not taken (two runs into one folder), the folder checked only at the
    first save (after the training)."""
    (tmp_path / "a_file").write_text("x")
    one_line_error(capsys, [*TRAIN, "--checkpoint-dir", str(tmp_path / "a_file")],
                   "--checkpoint-dir", "a_file", "is a file")
    one_line_error(capsys, [*TRAIN, "--log-dir", str(tmp_path / "a_file" / "logs")],
                   "--log-dir", "not writable")
    with lock_directory(tmp_path / "busy"):          # another run holds the folder
        one_line_error(capsys, [*TRAIN, "--steps", "1", "--checkpoint-dir", str(tmp_path / "busy")],
                       "--checkpoint-dir", "busy", "in use by another run")
    assert not list((tmp_path / "busy").glob("step_*.pt"))


def test_debug_shows_the_traceback_too(capsys):
    assert main([*TRAIN, "--steps", "-5", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: --steps")


@pytest.mark.parametrize("argv, words", [
    (["serve", "--checkpoint", "/no/such.pt"], ["--checkpoint", "does not exist"]),
    (["serve", "--checkpoint", "x.pt", "--port", "70000"], ["--port", "0..65535"]),
    (["serve", "--checkpoint", "x.pt", "--threads", "0"], ["--threads", "1.."]),
    (["serve", "--checkpoint", "x.pt", "--max-body", "0"], ["--max-body", "1.."]),
    (["serve", "--checkpoint", "x.pt", "--deadline", "0"], ["--deadline", "0.01.."]),
    (["bench", "no_such_bench"], ["unknown benchmark(s) ['no_such_bench']", "ops"]),
    (["doctor", "--verbose"], ["doctor takes no arguments"]),
    (["nope"], ["invalid choice"]),
])
def test_serve_bench_doctor_refuse_bad_arguments_in_one_line(capsys, argv, words):
    one_line_error(capsys, argv, *words)


def test_flex_bounds_seeds_and_checks_out_before_running(capsys, tmp_path, monkeypatch):
    """Planted bugs: --seeds unbounded (a billion seeds built up front), --out checked after the run,
    flex's parser printing argparse's usage text and raising SystemExit instead of one line."""
    (tmp_path / "a_file").write_text("x")
    flex = ["flex", "--profile", "smoke"]
    one_line_error(capsys, [*flex, "--seeds", "1000000000"], "--seeds", "at least 1 and at most 1000")
    one_line_error(capsys, [*flex, "--seeds", "0"], "--seeds", "at least 1 and at most 1000", "got 0")
    one_line_error(capsys, [*flex, "--out", str(tmp_path / "a_file")], "--out", "a_file", "is a file")
    one_line_error(capsys, [*flex, "--setting", "both"], "--setting", "invalid choice", "weights")
    one_line_error(capsys, [*flex, "--families", "transformer"], "unknown families", "pointer")
    monkeypatch.setenv("ATTNFLEX_PROFILE", "bogus")
    one_line_error(capsys, ["flex", "--out", str(tmp_path / "out")], "ATTNFLEX_PROFILE='bogus'")


def test_doctor_checks_the_serving_dependencies_by_their_installed_version(monkeypatch):
    """Planted bug: prometheus_client has no __version__, so reading only that called it "0"."""
    from attnflex_lab import doctor

    serving = {"fastapi", "uvicorn", "prometheus_client", "filelock"}
    needed = tuple(req for req in doctor.REQUIREMENTS if req.module in serving)
    assert {req.module for req in needed} == serving
    monkeypatch.setattr(doctor, "REQUIREMENTS", needed)   # the others import jupyterlab: seconds
    assert doctor.check_requirements() == []
