"""`python -m attnflex_lab bench [NAME ...]`: run the benchmark scripts in `benchmarks/`.

Each script times ours against a reference in one process and prints ratios, ending with one JSON
line. The scripts live in the repository (not in the installed package), so this command works from
a clone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..cli_errors import UsageError

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"  # attnflex_lab/perf/bench.py -> the clone


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def run_benchmarks(names: list[str]) -> int:
    if not BENCH_DIR.is_dir():
        raise UsageError(f"no benchmarks/ folder next to the package ({BENCH_DIR}); run this from a "
                         f"clone of the repository")
    known = available()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown benchmark(s) {unknown}; available: {', '.join(known)}")
    status = 0
    for name in names or known:
        print(f"== benchmarks/bench_{name}.py", flush=True)
        status |= subprocess.call([sys.executable, str(BENCH_DIR / f"bench_{name}.py")])
    return status
