"""``python -m attnflex_lab flex``: run an elasticity experiment, write its curves and summary.

Prints a progress bar on stderr, writes ``flex_<setting>_curves.csv`` and ``flex_<setting>_summary.json``
into ``--out``, and ends with exactly one JSON line on stdout (the summary).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from ..profiles import PROFILES, profile
from .models import FAMILIES
from .shifts import SHIFT_FAMILIES

MAX_SEEDS = 1000  # each seed trains every family: more is days of work, and the list is built up front


def json_safe(value):
    """JSON has no inf/NaN: write them as the strings "inf" / null."""
    if isinstance(value, float):
        return None if math.isnan(value) else ("inf" if math.isinf(value) else value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    from ..cli_errors import OneLineParser  # errors: one line `error: ...`, exit 2, as every subcommand

    parser: argparse.ArgumentParser = OneLineParser(prog="python -m attnflex_lab flex",
                                                    description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=("weights", "context", "shifts"), default="weights",
                        help="weights: rule switches re-learned by training (A); context: in-context WCST (B); "
                             "shifts: ID/ED/reversal shifts with dimensional attention")
    parser.add_argument("--profile", choices=PROFILES, default=None, help="default: ATTNFLEX_PROFILE / the machine")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per model family (default 5)")
    parser.add_argument("--families", nargs="+", default=None, metavar="FAMILY",
                        help="model families (default, weights: all of " + ", ".join(FAMILIES)
                             + "; shifts: all of " + ", ".join(SHIFT_FAMILIES) + ")")
    parser.add_argument("--out", type=Path, default=Path("artifacts/flex"), help="folder for the CSV and JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.seeds <= MAX_SEEDS:
        parser.error(f"--seeds must be at least 1 and at most {MAX_SEEDS}, got {args.seeds}")
    known = SHIFT_FAMILIES if args.setting == "shifts" else FAMILIES
    unknown = [f for f in args.families or () if f not in known]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(known)}")
    if args.families and args.setting == "context":
        parser.error("--families applies to --setting weights or shifts only")
    from ..training.checkpoint import CheckpointDirError, check_writable

    try:  # before the experiment: a folder found unusable after it would cost the whole run
        check_writable(args.out, "--out")
    except CheckpointDirError as err:
        parser.error(str(err))
    try:
        prof = args.profile or profile()
    except ValueError as err:  # ATTNFLEX_PROFILE set to something that is not a profile
        parser.error(str(err))
    if args.setting == "shifts":
        return _shifts(args, prof)
    from .switching import run_switching

    result = run_switching(args.setting, profile_name=prof, seeds=args.seeds, progress=True,
                           families=tuple(args.families or FAMILIES))
    return _write(args, result.curves, result.summary)


def _shifts(args, prof: str) -> int:
    from .shift_runs import run_shift_experiment

    summary, runs = run_shift_experiment(tuple(args.families or SHIFT_FAMILIES), seeds=args.seeds,
                                         profile_name=prof, progress=True)
    curves = [{"family": r.family, "seed": r.seed, "stage": stage, "step": i, "expected_accuracy": float(p)}
              for r in runs for stage, trace in (("acquisition", r.acquisition), *r.shifts.items())
              for i, p in enumerate(trace.expected_acc)]
    return _write(args, curves, summary)


def _write(args, curves: list[dict], summary: dict) -> int:
    """flex_<setting>_curves.csv and flex_<setting>_summary.json into --out; the summary as the last line."""
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"flex_{args.setting}_curves.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(curves[0]))
        writer.writeheader()
        writer.writerows(curves)
    summary = json_safe(summary)
    (args.out / f"flex_{args.setting}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0
