"""Hand-backward ``ops.attention`` vs the autograd reference ``functional.attention``.

Forward + backward, fp32, one process, interleaved repeats after a warm-up, median times.
Prints a table with the ratios (ours / reference) and ends with one JSON line of them.

    .venv/bin/python benchmarks/bench_ops.py                 # B=4, H=4, D=64, T in 64..1024
    .venv/bin/python benchmarks/bench_ops.py --lengths 64 256 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from attnflex_lab import functional, ops


def make_inputs(batch: int, heads: int, length: int, width: int, seed: int):
    """q, k, v (B, H, T, D) that require grad, and a random upstream gradient dO (B, H, T, D)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, heads, length, width)
    q, k, v = (torch.randn(shape, generator=gen).requires_grad_() for _ in range(3))
    grad_out = torch.randn(shape, generator=gen)
    return q, k, v, grad_out


def step_seconds(attention_fn, q, k, v, grad_out, mask) -> float:
    """Time one forward + backward (the weights are returned but get no gradient)."""
    for x in (q, k, v):
        x.grad = None
    start = time.perf_counter()
    out, _weights = attention_fn(q, k, v, mask)
    out.backward(grad_out)
    return time.perf_counter() - start


def bench_length(length: int, mask_kind: str, args) -> dict:
    q, k, v, grad_out = make_inputs(args.batch, args.heads, length, args.width, args.seed)
    mask = None
    if mask_kind == "causal":
        mask = torch.ones(length, length, dtype=torch.bool).tril()  # (T, S), True = may attend
    fns = {"ours": ops.attention, "reference": functional.attention}
    for _ in range(args.warmup):
        for fn in fns.values():
            step_seconds(fn, q, k, v, grad_out, mask)
    times: dict[str, list[float]] = {name: [] for name in fns}
    repeats = args.repeats or max(5, min(40, 20_000 // length))
    for i in range(repeats):
        order = list(fns) if i % 2 == 0 else list(reversed(fns))  # alternate who goes first
        for name in order:
            times[name].append(step_seconds(fns[name], q, k, v, grad_out, mask))
    ours, ref = statistics.median(times["ours"]), statistics.median(times["reference"])
    return {"T": length, "mask": mask_kind, "repeats": repeats, "ours_ms": 1e3 * ours,
            "reference_ms": 1e3 * ref, "ratio": ours / ref}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--width", type=int, default=64, help="D, the head width")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 512, 1024])
    parser.add_argument("--masks", nargs="+", default=["none", "causal"],
                        choices=["none", "causal"])
    parser.add_argument("--repeats", type=int, default=0, help="0: picked from T")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads; 0 keeps torch's default")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"ops.attention (hand backward) vs functional.attention (autograd), forward + backward, "
          f"fp32, B={args.batch} H={args.heads} D={args.width}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'T':>6} {'mask':>7} {'reps':>5} {'ours ms':>10} {'ref ms':>10} {'ours/ref':>9}")
    rows = []
    for mask_kind in args.masks:
        for length in args.lengths:
            row = bench_length(length, mask_kind, args)
            rows.append(row)
            print(f"{row['T']:>6} {row['mask']:>7} {row['repeats']:>5} {row['ours_ms']:>10.2f} "
                  f"{row['reference_ms']:>10.2f} {row['ratio']:>9.3f}")
    summary = {"bench": "ops.attention_fwd_bwd", "dtype": "float32", "B": args.batch,
               "H": args.heads, "D": args.width, "threads": torch.get_num_threads(),
               "ratios": {f"T={r['T']},mask={r['mask']}": round(r["ratio"], 4) for r in rows}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
