"""Dry-run the lessons at a profile's sizes: find the cells that would crash, in minutes, on a CPU.

    python scripts/dry_run.py                        # gpu profile, 2 steps per training loop, every lesson
    python scripts/dry_run.py --steps 5 07 09        # lessons whose file names start with 07 or 09
    make test-gpu-dry                                # the first line, from a fresh clone

No GPU has run the gpu profile through the lessons, and a gpu run on Colab is the first place a learner
would meet a crash that only its sizes cause (lesson 09 had one: a hard-coded sequence length). A dry
run executes each lesson top to bottom with nbclient, in a kernel whose ``ATTNFLEX_PROFILE`` is the
profile (so the data, models, sequence lengths and batch sizes are that profile's) and whose
``ATTNFLEX_DRY_RUN_STEPS`` cuts every training loop in the lab to ``--steps`` steps
(``attnflex_lab.profiles.run_steps``). Evaluation, attribution and timing cells run at full size.

A model trained for 2 steps does not do what the lesson says, so the lesson's own asserts are made
soft (scripts/dry_run_asserts.py): each failed one is recorded and the cell goes on. A lesson fails
the dry run when any cell raises (a shape, a size, a dtype, a missing name; an assert inside the lab's
package still raises). The table counts the soft asserts that failed: expected after 2 steps, and no
verdict on the lesson.

Two cells that measure memory at sizes meant for a GPU ran out of this machine's 24 GiB on a CPU, where
the kernel is killed rather than handed an out-of-memory error; in the gpu profile they are skipped
(``TOO_BIG_FOR_A_CPU``, ``--no-skip`` runs them), and lesson 06, whose kernel needs most of the 24 GiB,
runs after the other lessons with nothing beside it (``RUN_ALONE``). The last column of the table, the kernel's peak
memory, is a rough upper bound on what a lesson's sizes hold on a GPU.

Exit status 0 when no lesson crashed. Executed copies go to ``_build/dry-run/PROFILE/`` with their
outputs, for reading a crash in context.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_site import PROFILES, ROOT, WakefulClient, find_notebooks  # noqa: E402

CELL_TIMEOUT_S = 1200   # one cell at gpu sizes on a CPU: evaluations and timings run at full size
# Cells that ran out of this machine's 24 GiB at the gpu profile's sizes on a CPU, where no
# out-of-memory error can be caught: the kernel is killed. They measure memory at sizes meant for a GPU
# (where lesson 06's sweep catches an out-of-memory error and plots it). A dry run skips them (their
# source is replaced by a print) unless --no-skip; no later cell reads what they define.
TOO_BIG_FOR_A_CPU = {
    "06-i11-08": "SDPA's math backend at T = 8192, 12 heads, float32: killed at 13 GiB resident, asking for more",
    "07-028": "four attentions' peak memory and time at T = 4096, B = 4, H = 8: killed at 20.6 GiB resident",
}
# Lessons whose kernel needs most of this machine's 24 GiB at gpu sizes: in the gpu profile they run
# after the others, one at a time, so no other lesson's kernel is beside them.
RUN_ALONE = {
    "06_training_on_a_gpu.ipynb": "its kernel peaks at 20.8 GiB resident (GPT-2 small's shape, trained "
                                  "and profiled in float32); beside lesson 12 the machine ran out of memory",
}
# Appended to each lesson: the kernel's peak resident memory. On a CPU the lesson's tensors live in
# host memory, so this is a rough upper bound on what the same sizes hold on a GPU (the CPU allocator
# also keeps memory that was freed).
PEAK_MEMORY_CELL = ('import resource; '
                    'print("peak memory GiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)')


def _errors(nb) -> list[dict]:
    """Every cell that ended in an error: its id, the exception's name and its last line."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                found.append({"cell": cell.get("id", "?"), "error": out.get("ename", "?"),
                              "says": (out.get("evalue") or "").strip().splitlines()[-1:] or [""]})
    return found


def run_one(source: Path, profile: str, steps: int, out_dir: Path, skip: dict[str, str]) -> dict:
    """Execute one lesson (in a worker process); return what crashed and which asserts failed."""
    log = Path(tempfile.mkstemp(prefix=f"dry-{source.stem}-", suffix=".jsonl")[1])
    os.environ.update({"ATTNFLEX_PROFILE": profile, "ATTNFLEX_DRY_RUN_STEPS": str(steps),
                       "ATTNFLEX_DRY_RUN_LOG": str(log), "OMP_NUM_THREADS": "1",
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                       "PYTHONSTARTUP": str(Path(__file__).resolve().parent / "dry_run_startup.py")})
    nb = nbformat.read(source, as_version=4)
    skipped = [cell.id for cell in nb.cells if cell.cell_type == "code" and cell.get("id") in skip]
    for cell in nb.cells:
        if cell.get("id") in skipped:
            cell.source = f"print({'skipped by the dry run: ' + skip[cell.id]!r})"
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_MEMORY_CELL))
    client = WakefulClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=True,
                           resources={"metadata": {"path": str(source.parent)}},
                           iopub_timeout=120, raise_on_iopub_timeout=True)
    start, stopped = time.monotonic(), ""
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError) as err:
        started = [cell.get("id", "?") for cell in nb.cells if cell.get("execution_count")]   # set on starting
        stopped = f"{type(err).__name__} in cell {started[-1] if started else '?'}"
    seconds = time.monotonic() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / source.name)
    peak = [float(out["text"].split()[-1]) for out in nb.cells[-1].get("outputs", [])
            if out.get("output_type") == "stream" and out.get("text", "").startswith("peak memory GiB")]
    soft = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    log.unlink()
    return {"lesson": source.name, "seconds": round(seconds, 1), "peak_memory_gib": peak[0] if peak else None,
            "errors": _errors(nb), "stopped": stopped, "skipped": skipped,
            "soft_asserts_failed": soft}


def schedule(notebooks: list[Path], profile: str, jobs: int) -> list[tuple[list[Path], int]]:
    """(lessons, how many run at once) in order: every lesson but RUN_ALONE's with ``jobs`` at once,
    then RUN_ALONE's one at a time (in the gpu profile; the others are small everywhere)."""
    alone = RUN_ALONE if profile == "gpu" else {}
    batches = [([nb for nb in notebooks if nb.name not in alone], jobs),
               ([nb for nb in notebooks if nb.name in alone], 1)]
    return [(batch, n) for batch, n in batches if batch]


def report(results: list[dict]) -> str:
    lines = [f"{'lesson':<46}{'seconds':>9}{'peak GiB':>10}{'soft asserts failed':>22}  crash"]
    for r in sorted(results, key=lambda r: r["lesson"]):
        first = r["stopped"] or (f"cell {r['errors'][0]['cell']}: {r['errors'][0]['error']}: "
                                 f"{r['errors'][0]['says'][0][:120]}" if r["errors"] else "")
        peak = "?" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
        failed = len(r["soft_asserts_failed"])
        lines.append(f"{r['lesson']:<46}{r['seconds']:>9.0f}{peak:>10}{failed:>22}  {first or '-'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="file-name prefixes (default: every lesson)")
    parser.add_argument("--profile", default="gpu", choices=PROFILES)
    parser.add_argument("--steps", type=int, default=2, help="steps per training loop (default 2)")
    parser.add_argument("--jobs", type=int, default=2, help="lessons executed at once (default 2)")
    parser.add_argument("--json", type=Path, help="also write the full results here")
    parser.add_argument("--no-skip", action="store_true",
                        help="run the cells that are too big for a CPU at gpu sizes too (TOO_BIG_FOR_A_CPU)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    notebooks = [nb for nb in find_notebooks() if not args.lessons or nb.name.startswith(tuple(args.lessons))]
    if not notebooks:
        parser.error(f"no lesson's file name starts with any of {args.lessons}")
    out_dir = ROOT / "_build" / "dry-run" / args.profile
    results = []
    skip = {} if args.no_skip or args.profile != "gpu" else TOO_BIG_FOR_A_CPU
    for batch, jobs in schedule(notebooks, args.profile, args.jobs):
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, nb, args.profile, args.steps, out_dir, skip) for nb in batch]
            for future in as_completed(futures):
                r = future.result()
                results.append(r)
                print(f"{r['lesson']}: {r['seconds']:.0f} s, {len(r['errors'])} cells raised, "
                      f"{len(r['soft_asserts_failed'])} soft asserts failed {r['stopped']}", flush=True)
    print(f"\ndry run, profile {args.profile!r}, {args.steps} steps per training loop:")
    print(report(results))
    for r in results:
        for cell in r["skipped"]:
            print(f"skipped {r['lesson']} cell {cell}: {TOO_BIG_FOR_A_CPU[cell]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    crashed = [r["lesson"] for r in results if r["errors"] or r["stopped"]]
    if crashed:
        print(f"\n{len(crashed)} lesson(s) crashed: {', '.join(crashed)} (executed copies in {out_dir})")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
