"""Seconds per learning run (cpu profile): digits (attention vs mean pooling) and dates.

Runs the same recipes as tests/test_learning_digits.py and tests/test_learning_dates.py through ``train_recipe`` in one
process, prints a table with the accuracy reached and the ratio attention / mean-pooling, and ends
with one JSON line. The timings are wall-clock seconds of ``fit`` (data building and the final test
evaluation excluded), so they depend on the machine and on whatever else is running on it.

    .venv/bin/python benchmarks/bench_learning.py                  # seeds 0 1 2, 1 thread
    .venv/bin/python benchmarks/bench_learning.py --seeds 0 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

import torch

from attnflex_lab import recipes


def run(task: str, seed: int, profile: str) -> dict:
    metrics, _, _ = recipes.train_recipe(task, profile_name=profile, seed=seed, progress=False)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = {name: [run(name, s, args.profile) for s in args.seeds]
            for name in ("digits", "digits_mean")}
    rows["dates"] = [run("dates", args.seeds[0], args.profile)]

    print(f"profile={args.profile} threads={args.threads} cpus={os.cpu_count()} "
          f"torch={torch.__version__} python={platform.python_version()}")
    print(f"{'task':<12} {'seed':>4} {'steps':>6} {'seconds':>8}  metrics")
    for name, results in rows.items():
        for seed, m in zip(args.seeds, results, strict=False):
            shown = {k: round(v, 4) for k, v in m.items()
                     if k in ("test_accuracy", "exact_match", "alignment_accuracy", "alignment_exact")}
            print(f"{name:<12} {seed:>4} {m['steps']:>6} {m['seconds']:>8.2f}  {shown}")

    def mean(name, key):
        return statistics.mean(m[key] for m in rows[name])

    summary = {
        "profile": args.profile, "threads": args.threads, "seeds": args.seeds,
        "digits_seconds": mean("digits", "seconds"),
        "digits_mean_seconds": mean("digits_mean", "seconds"),
        "digits_seconds_ratio_attention_over_mean": mean("digits", "seconds")
        / mean("digits_mean", "seconds"),
        "digits_test_accuracy": mean("digits", "test_accuracy"),
        "digits_mean_test_accuracy": mean("digits_mean", "test_accuracy"),
        "digits_test_accuracy_min": min(m["test_accuracy"] for m in rows["digits"]),
        "dates_seconds": rows["dates"][0]["seconds"],
        "dates_exact_match": rows["dates"][0]["exact_match"],
        "dates_alignment_accuracy": rows["dates"][0]["alignment_accuracy"],
        "dates_alignment_exact": rows["dates"][0]["alignment_exact"],
    }
    print(f"digits: attention / mean pooling seconds = "
          f"{summary['digits_seconds_ratio_attention_over_mean']:.2f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
