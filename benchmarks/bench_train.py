"""TinyGPT training speed on this device: tokens/s, MFU, and fit()'s overhead over a bare loop.

The same model, data, optimizer (AdamW), lr schedule, gradient clipping and AMP setting run two
ways in one process, interleaved: through ``attnflex_lab.training.fit`` and through a bare loop of
zero_grad / forward / backward / clip / step. The ratio fit / bare is fit's overhead (aim ≤ 1.05);
the median and the best of the interleaved repeats are both reported, since a shared machine is noisy.
MFU uses flops per token = 6N + 12·L·C·T against the GPU's data-sheet peak, or a measured matmul
peak on a CPU. Ends with one JSON line.

    .venv/bin/python benchmarks/bench_train.py                      # size from the profile
    .venv/bin/python benchmarks/bench_train.py --preset smoke --steps 10 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch.utils.data import TensorDataset

from attnflex_lab.device import pick_device, seed_everything
from attnflex_lab.models.transformer import TinyGPT
from attnflex_lab.perf import flops as perf
from attnflex_lab.profiles import profile
from attnflex_lab.recipes.lm import gpt_config, lm_loss
from attnflex_lab.tasks.text import CharTokenizer, make_corpus
from attnflex_lab.training import TrainConfig, fit, lr_factor


def windows(block_size: int, n_chars: int) -> tuple[TensorDataset, int]:
    """Non-overlapping (x, y) windows of the generated corpus, as one TensorDataset."""
    text = make_corpus(n_chars)
    tok = CharTokenizer(text)
    ids = tok.encode(text)                                         # (N,)
    n = (len(ids) - 1) // block_size
    x = ids[: n * block_size].view(n, block_size)                  # (n, T)
    y = ids[1 : n * block_size + 1].view(n, block_size)            # (n, T): shifted by one
    return TensorDataset(x, y), tok.vocab_size


def bare_loop(model, data, cfg: TrainConfig, device) -> float:
    """Seconds per step of a plain loop doing the same work as fit (no logging, no callbacks)."""
    seed_everything(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    x_all, y_all = data.tensors
    gen = torch.Generator().manual_seed(cfg.seed)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.amp_dtype == "bf16"
           else torch.autocast(device.type, enabled=False))
    perf.synchronize(device)
    start = time.perf_counter()
    for _ in range(cfg.steps):
        idx = torch.randint(0, len(x_all), (cfg.batch_size,), generator=gen)   # (B,)
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        with amp:
            loss = lm_loss(model, (x, y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
    perf.synchronize(device)
    return (time.perf_counter() - start) / cfg.steps


def fit_loop(model, data, cfg: TrainConfig) -> float:
    history = fit(model, data, None, cfg, loss_fn=lm_loss)
    return history.seconds / cfg.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("smoke", "cpu", "gpu"), default=None,
                        help="TinyGPT size (default: the current profile)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each loop")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    preset = args.preset or profile()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    probe = gpt_config(1, profile_name=preset)
    data, vocab = windows(probe.block_size, n_chars=max(200_000, 400 * probe.block_size))
    steps = args.steps or (30 if gpu else 15)
    batch = args.batch_size or (16 if gpu else 8)
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, warmup_steps=2, device=str(device),
                      amp_dtype="bf16" if gpu else None, progress=False, log_every=1)

    torch.manual_seed(0)
    model = TinyGPT(gpt_config(vocab, profile_name=preset)).to(device)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    fit_loop(model, data, TrainConfig(**{**cfg.__dict__, "steps": 3}))       # warm-up, untimed
    bare_loop(model, data, TrainConfig(**{**cfg.__dict__, "steps": 3}), device)
    times = {"fit": [], "bare": []}
    for i in range(args.repeats):
        for name in (("fit", "bare") if i % 2 == 0 else ("bare", "fit")):  # alternate who goes first
            model.load_state_dict(initial)
            perf.reset_peak_memory(device)
            seconds = fit_loop(model, data, cfg) if name == "fit" else bare_loop(model, data, cfg, device)
            times[name].append(seconds)
    fit_s, bare_s = statistics.median(times["fit"]), statistics.median(times["bare"])

    c = model.cfg
    n_params = perf.count_params(model)
    fpt = perf.flops_per_token(n_params, c.n_layers, c.d_model, c.block_size)
    tokens_per_step = batch * c.block_size
    report = perf.throughput_report(tokens_per_step=tokens_per_step, seconds_per_step=bare_s,
                                    flops_per_tok=fpt, device=device)
    fit_tps = tokens_per_step / fit_s
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if gpu else platform.processor() or "cpu",
        "preset": preset, "n_params": n_params, "block_size": c.block_size, "batch_size": batch,
        "steps": steps, "repeats": args.repeats, "amp": cfg.amp_dtype,
        "bare_ms_per_step": 1e3 * bare_s, "fit_ms_per_step": 1e3 * fit_s,
        "fit_over_bare": fit_s / bare_s,
        "fit_over_bare_best": min(times["fit"]) / min(times["bare"]),  # best-of-repeats: less noise
        "fit_runs_ms": [round(1e3 * t, 2) for t in times["fit"]],
        "bare_runs_ms": [round(1e3 * t, 2) for t in times["bare"]],
        "tokens_per_second_bare": report["tokens_per_second"], "tokens_per_second_fit": fit_tps,
        "flops_per_token": fpt, "peak_tflops": report["peak_tflops"], "peak_source": report["peak_source"],
        "mfu_bare": report["mfu"], "mfu_fit": perf.mfu(fit_tps, fpt, report["peak_tflops"] * 1e12),
        "peak_memory_mib": perf.peak_memory_bytes(device) / 2**20,
    }
    print(f"TinyGPT ({preset}, {n_params / 1e6:.2f}M params, T={c.block_size}, B={batch}) on {device}")
    print(f"  bare loop   {result['bare_ms_per_step']:8.1f} ms/step  {result['tokens_per_second_bare']:10.0f} tok/s"
          f"  MFU {100 * result['mfu_bare']:.2f}%")
    print(f"  fit()       {result['fit_ms_per_step']:8.1f} ms/step  {fit_tps:10.0f} tok/s"
          f"  MFU {100 * result['mfu_fit']:.2f}%")
    print(f"  ratio fit / bare = {result['fit_over_bare']:.3f} (medians), "
          f"{result['fit_over_bare_best']:.3f} (best runs)  (peak {report['peak_tflops']:.3g} TFLOP/s, "
          f"{report['peak_source']})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
