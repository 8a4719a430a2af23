"""Tiled attention (FlashAttention-2 in plain PyTorch) vs naive attention, linear attention, KV cache.

Forward + backward, fp32, one process, interleaved repeats after a warm-up, median times; peak
memory from ``attnflex_lab.kernels.memory.peak_bytes`` (CUDA's allocator high-water mark, or on CPU the
bytes of live tensors counted op by op). Prints three tables of ratios (method / naive) and ends
with one JSON line of them.

    .venv/bin/python benchmarks/bench_flash.py                      # B=8 H=4 D=64, T 256..2048
    .venv/bin/python benchmarks/bench_flash.py --lengths 256 512 --repeats 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from attnflex_lab import functional, kernels
from attnflex_lab.kernels import efficient, flash, kv_cache, memory
from attnflex_lab.models.transformer import GPTConfig, TinyGPT
from attnflex_lab.modules import causal_mask

METHODS = {
    "naive": lambda q, k, v: functional.attention(q, k, v)[0],
    "sdpa": F.scaled_dot_product_attention,
    "tiled_autograd": flash.tiled_attention_autograd,
    "tiled_hand": flash.flash_attention,    # the backward in FlashAttention-2's order (key blocks outside)
    "tiled_hand_q_outer": lambda q, k, v: flash.flash_attention(q, k, v, backward_order="q_outer"),
}


def _with_triton(methods: dict, device) -> dict:
    """Adds the Triton forward (with flash's hand backward) where it compiles: CUDA and the triton extra."""
    if torch.device(device).type != "cuda" or not kernels.triton_available():
        return methods
    triton_flash = kernels.load_triton_flash(interpret=False)
    return {**methods, "triton_fwd_hand_bwd": triton_flash.triton_flash_attention}


def make_inputs(batch, heads, length, width, seed, device):
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = (batch, heads, length, width)
    q, k, v = (torch.randn(shape, generator=gen, device=device).requires_grad_() for _ in range(3))
    return q, k, v, torch.randn(shape, generator=gen, device=device)


def fwd_bwd(fn, q, k, v, grad_out):
    def step():
        for x in (q, k, v):
            x.grad = None
        fn(q, k, v).backward(grad_out)
    return step


def compare(methods: dict, inputs, repeats: int, warmup: int, device) -> dict:
    """{name: (median seconds, peak bytes)}; repeats interleaved, rotating who goes first."""
    steps = {name: fwd_bwd(fn, *inputs) for name, fn in methods.items()}
    for _ in range(warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    names = list(steps)
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(memory.time_call(steps[name], repeats=1, warmup=0, device=device))
    return {name: (statistics.median(times[name]), memory.peak_bytes(steps[name], device)) for name in steps}


def bench_tiled(args, device) -> list[dict]:
    print("\n1) tiled attention, forward + backward (ratios: method / naive)")
    print(f"{'T':>6} {'method':>15} {'ms':>10} {'peak MiB':>10} {'time×':>7} {'mem×':>7}")
    rows = []
    for length in args.lengths:
        inputs = make_inputs(args.batch, args.heads, length, args.width, args.seed, device)
        repeats = args.repeats or max(2, min(10, 4096 // length))
        results = compare(_with_triton(METHODS, device), inputs, repeats, args.warmup, device)
        base_t, base_m = results["naive"]
        for name, (seconds, peak) in results.items():
            row = {"T": length, "method": name, "ms": 1e3 * seconds, "peak_mib": peak / 2**20,
                   "time_ratio": seconds / base_t, "mem_ratio": peak / base_m}
            rows.append(row)
            print(f"{length:>6} {name:>15} {row['ms']:>10.1f} {row['peak_mib']:>10.1f} "
                  f"{row['time_ratio']:>7.3f} {row['mem_ratio']:>7.3f}")
    return rows


def bench_linear(args, device) -> tuple[list[dict], int | None]:
    print("\n2) causal linear attention (elu + 1, chunked prefix sums) vs causal naive attention")
    print(f"{'T':>6} {'naive ms':>10} {'linear ms':>10} {'naive MiB':>10} {'linear MiB':>10} {'time×':>7} {'mem×':>7}")
    methods = {
        "naive": lambda q, k, v: functional.attention(q, k, v, causal_mask(q.shape[-2], device=q.device))[0],
        "linear": lambda q, k, v: efficient.linear_attention(q, k, v, causal=True),
    }
    rows, crossover, mem_crossover = [], None, None
    for length in args.linear_lengths:
        inputs = make_inputs(args.batch, args.heads, length, args.width, args.seed, device)
        results = compare(methods, inputs, args.repeats or 3, args.warmup, device)
        (nt, nm), (lt, lm) = results["naive"], results["linear"]
        rows.append({"T": length, "time_ratio": lt / nt, "mem_ratio": lm / nm})
        if crossover is None and lt < nt:
            crossover = length
        if mem_crossover is None and lm < nm:
            mem_crossover = length
        print(f"{length:>6} {1e3 * nt:>10.1f} {1e3 * lt:>10.1f} {nm / 2**20:>10.1f} {lm / 2**20:>10.1f} "
              f"{lt / nt:>7.3f} {lm / nm:>7.3f}")
    print(f"memory crossover: linear needs less from T = {mem_crossover} on (deterministic)")
    if crossover is None:
        print("time crossover: not reached in these lengths")
    elif crossover == args.linear_lengths[0]:
        print(f"time crossover: at or below T = {crossover}, the shortest length measured")
    else:
        print(f"time crossover: linear is faster from T = {crossover} on")
    return rows, crossover, mem_crossover


def bench_kv_cache(args, device) -> dict:
    print(f"\n3) greedy generation of {args.new_tokens} tokens with TinyGPT, with and without a KV cache")
    torch.manual_seed(args.seed)
    cfg = GPTConfig(vocab_size=65, block_size=args.new_tokens + 16, n_layers=4, n_heads=4, d_model=128)
    model = TinyGPT(cfg).to(device).eval()
    prompt = torch.randint(0, 65, (1, 16), device=device)
    seconds, tokens = {}, {}
    for use_cache in (False, True, False, True):  # interleaved; the second of each pair is kept
        start = time.perf_counter()
        tokens[use_cache] = kv_cache.generate_greedy(model, prompt, args.new_tokens, use_cache=use_cache)
        memory.time_call(lambda: None, repeats=1, warmup=0, device=device)  # synchronise CUDA
        seconds[use_cache] = time.perf_counter() - start
    same = torch.equal(tokens[True], tokens[False])
    ratio = seconds[False] / seconds[True]
    print(f"without cache {args.new_tokens / seconds[False]:8.1f} tokens/s, with cache "
          f"{args.new_tokens / seconds[True]:8.1f} tokens/s: {ratio:.2f}× faster; identical tokens: {same}")
    return {"speedup": ratio, "identical": same}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--width", type=int, default=64, help="D, the head width")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--linear-lengths", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=0, help="0: picked from T")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 keeps the default")
    parser.add_argument("--only", nargs="+", choices=["tiled", "linear", "kv"], default=["tiled", "linear", "kv"])
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"bench_flash: fp32, B={args.batch} H={args.heads} D={args.width}, torch {torch.__version__}, "
          f"{device}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"blocks {flash.DEFAULT_BLOCK_Q}×{flash.DEFAULT_BLOCK_K}")
    summary = {"bench": "flash", "dtype": "float32", "B": args.batch, "H": args.heads, "D": args.width,
               "device": str(device), "threads": torch.get_num_threads()}
    if "tiled" in args.only:
        rows = bench_tiled(args, device)
        summary["tiled"] = {f"T={r['T']},{r['method']}": {"time": round(r["time_ratio"], 3),
                                                          "mem": round(r["mem_ratio"], 4)} for r in rows}
    if "linear" in args.only:
        rows, crossover, mem_crossover = bench_linear(args, device)
        summary["linear"] = {f"T={r['T']}": {"time": round(r["time_ratio"], 3), "mem": round(r["mem_ratio"], 4)}
                             for r in rows}
        summary["linear_time_crossover_T"] = crossover
        summary["linear_memory_crossover_T"] = mem_crossover
    if "kv" in args.only:
        summary["kv_cache"] = bench_kv_cache(args, device)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
