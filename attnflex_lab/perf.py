"""How fast is training? Tokens per second, FLOPs per token, model FLOPs utilisation, peak memory.

Training FLOPs per token (Kaplan et al. 2020; Chowdhery et al. 2022, appendix B):

    flops_per_token = 6·N + 12·L·C·T

6·N: every parameter does one multiply-add (2 FLOPs) in the forward pass and two in the backward.
12·L·C·T: the attention scores q·k and the weighted sum over T positions, which no parameter counts
(2 matmuls × 2 FLOPs × 3 for forward + backward = 12, per layer, per width, per position).
MFU = achieved FLOP/s / peak FLOP/s of the chip (Chowdhery et al. 2022): the share of the hardware's
arithmetic the model really uses. Peaks are the vendors' dense bf16 numbers (fp16 for the T4, which
has no bf16); on a CPU we measure a matmul peak instead.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable

import torch

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets (SXM parts).
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L4": 121.0,
    "T4": 65.0,   # fp16: the T4 (Turing) has no bf16
}


def count_params(model: torch.nn.Module, *, non_embedding: bool = False) -> int:
    """N: parameters counted once (tied weights once); ``non_embedding`` drops position tables."""
    if non_embedding:
        if not hasattr(model, "num_params"):
            raise ValueError(f"non_embedding=True needs a model that knows its position table "
                             f"(a num_params method, as TinyGPT has); {type(model).__name__} has none")
        return model.num_params(non_embedding=True)
    return sum(p.numel() for p in model.parameters())


def flops_per_token(n_params: int, n_layers: int, d_model: int, seq_len: int) -> float:
    """Training FLOPs per token: 6·N + 12·L·C·T."""
    for name, value in (("n_params", n_params), ("n_layers", n_layers), ("d_model", d_model),
                        ("seq_len", seq_len)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    return 6.0 * n_params + 12.0 * n_layers * d_model * seq_len


def gpu_peak_flops(name: str | None = None) -> float | None:
    """Peak FLOP/s for a GPU by name ("NVIDIA H100 80GB HBM3" -> 989e12), None when not in the table."""
    if name is None:
        if not torch.cuda.is_available():
            return None
        name = torch.cuda.get_device_name()
    for key, tflops in PEAK_TFLOPS.items():  # H200 is listed before H100, so its name matches first
        if key.lower() in name.lower():
            return tflops * 1e12
    return None


def measure_matmul_flops(n: int = 1024, repeats: int = 10, *, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> float:
    """Achieved FLOP/s of an n×n @ n×n matmul (2n³ FLOPs), best of ``repeats``: a practical peak."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):  # the first run warms caches and kernels; min() discards it
        synchronize(device)
        start = time.perf_counter()
        a @ b  # (n, n) @ (n, n) -> (n, n)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def peak_flops(device: str | torch.device) -> tuple[float, str]:
    """(peak FLOP/s, where the number comes from) for ``device``: the table for GPUs, else measured."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        table = gpu_peak_flops(name)
        if table is not None:
            return table, f"data sheet ({name}, dense bf16)"
        return measure_matmul_flops(4096, 5, device=device, dtype=torch.bfloat16), f"measured bf16 matmul ({name})"
    return measure_matmul_flops(1024, 10, device=device), "measured fp32 matmul (CPU)"


def mfu(tokens_per_second: float, flops_per_tok: float, peak: float) -> float:
    """Model FLOPs utilisation: tokens/s · FLOPs/token / peak FLOP/s, between 0 and (about) 1."""
    if peak <= 0:
        raise ValueError(f"peak FLOP/s must be positive, got {peak}")
    return tokens_per_second * flops_per_tok / peak


def peak_memory_bytes(device: str | torch.device = "cpu") -> int:
    """The most memory used so far: CUDA's allocator high-water mark, or the process's max RSS on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS reports bytes, Linux KiB


def reset_peak_memory(device: str | torch.device = "cpu") -> None:
    """Restart CUDA's high-water mark (the CPU's max RSS cannot be reset)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def time_steps(step: Callable[[], object], steps: int, *, warmup: int = 2,
               device: str | torch.device = "cpu") -> float:
    """Mean seconds per call of ``step()`` after ``warmup`` untimed calls (synchronising the GPU)."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def throughput_report(*, tokens_per_step: int, seconds_per_step: float, flops_per_tok: float,
                      device: str | torch.device) -> dict:
    """tokens/s, achieved TFLOP/s, the peak and MFU, as one dict (a row of the lesson's table)."""
    peak, source = peak_flops(device)
    tps = tokens_per_step / seconds_per_step
    return {
        "device": str(device),
        "tokens_per_second": tps,
        "achieved_tflops": tps * flops_per_tok / 1e12,
        "peak_tflops": peak / 1e12,
        "peak_source": source,
        "mfu": mfu(tps, flops_per_tok, peak),
    }


def synchronize(device) -> None:
    """Wait for queued GPU work (a no-op on CPU), so a timer reads the work itself."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def preferred_amp_dtype(device: str | torch.device) -> str | None:
    """"bf16" on GPUs with native bf16 (compute capability ≥ 8.0: A100, L4, H100), "fp16" on older
    GPUs such as Colab's T4 (fp16 needs a GradScaler), None (fp32) elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"
