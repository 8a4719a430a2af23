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
    parser = argparse.ArgumentParser(prog="python -m attnflex_lab flex", description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=("weights", "context"), default="weights",
                        help="weights: rule switches re-learned by training (A); context: in-context WCST (B)")
    parser.add_argument("--profile", choices=PROFILES, default=None, help="default: ATTNFLEX_PROFILE / the machine")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per model family (default 5)")
    parser.add_argument("--families", nargs="+", default=None, metavar="FAMILY",
                        help="setting A model families (default: all of " + ", ".join(FAMILIES) + ")")
    parser.add_argument("--out", type=Path, default=Path("artifacts/flex"), help="folder for the CSV and JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.seeds <= MAX_SEEDS:
        parser.error(f"--seeds must be at least 1 and at most {MAX_SEEDS}, got {args.seeds}")
    unknown = [f for f in args.families or () if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    if args.families and args.setting == "context":
        parser.error("--families applies to --setting weights only")
    from ..training.checkpoint import CheckpointDirError, check_writable

    try:  # before the experiment: a folder found unusable after it would cost the whole run
        check_writable(args.out, "--out")
    except CheckpointDirError as err:
        parser.error(str(err))
    try:
        prof = args.profile or profile()
    except ValueError as err:  # ATTNFLEX_PROFILE set to something that is not a profile
        parser.error(str(err))
    from .switching import run_switching

    result = run_switching(args.setting, profile_name=prof, seeds=args.seeds, progress=True,
                           families=tuple(args.families or FAMILIES))
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / f"flex_{args.setting}_curves.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(result.curves[0]))
        writer.writeheader()
        writer.writerows(result.curves)
    summary = json_safe(result.summary)
    (args.out / f"flex_{args.setting}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0
