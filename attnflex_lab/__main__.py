"""Command line: ``python -m attnflex_lab doctor | train | bench | flex | serve | progress``."""

from __future__ import annotations

import sys

from .cli_errors import OneLineParser, run_command


def _dispatch(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m attnflex_lab", description=__doc__,
                           epilog="--debug (anywhere) prints a traceback with an error")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="print the environment report and check what the lab needs")
    bench = sub.add_parser("bench", help="run the benchmarks in benchmarks/ (all, or those named)")
    bench.add_argument("names", nargs="*", help="e.g. ops (runs benchmarks/bench_ops.py)")
    sub.add_parser("train", add_help=False,
                   help="train a recipe (--task NAME); prints one JSON line of final metrics")
    sub.add_parser("flex", add_help=False,
                   help="attention elasticity: rule-switching experiment (--setting weights|context)")
    sub.add_parser("serve", add_help=False,
                   help="serve a trained checkpoint over HTTP (--checkpoint PATH [--port N])")
    progress = sub.add_parser("progress", help="every exercise by lesson: passed / attempted / not attempted")
    progress.add_argument("--file", default=None, help="progress file (default $ATTNFLEX_PROGRESS, "
                                                       "else ~/.attnflex_lab/progress.json)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "doctor":
        if rest:
            parser.error(f"doctor takes no arguments, got {rest}")
        from .doctor import run_doctor

        return run_doctor()
    if args.command == "bench":
        if rest:
            parser.error(f"unexpected arguments {rest}")
        from .perf.bench import run_benchmarks

        return run_benchmarks(args.names)
    if args.command == "train":
        from .training.cli import main as train_main

        return train_main(rest)
    if args.command == "flex":
        from .elasticity.cli import main as flex_main

        return flex_main(rest)
    if args.command == "progress":
        if rest:
            parser.error(f"unexpected arguments {rest}")
        from .exercises.progress_file import progress

        print(progress(args.file))
        return 0
    if args.command == "serve":
        from .serve.cli import main as serve_main

        return serve_main(rest)
    parser.error(f"unknown command {args.command!r}")
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; a user error prints one line ``error: ...`` and returns 2."""
    return run_command(_dispatch, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
