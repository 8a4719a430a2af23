"""How fast is training? Tokens per second, FLOPs per token, model FLOPs utilisation, peak memory.

Training FLOPs per token (Kaplan et al. 2020; Chowdhery et al. 2022, appendix B):

    flops_per_token = 6·N + 12·L·C·T

6·N: every parameter does one multiply-add (2 FLOPs) in the forward pass and two in the backward.
12·L·C·T: the attention scores q·k and the weighted sum over T positions, which no parameter counts
(2 matmuls × 2 FLOPs × 3 for forward + backward = 12, per layer, per width, per position).
MFU = achieved FLOP/s / peak FLOP/s of the chip (Chowdhery et al. 2022): the share of the hardware's
arithmetic the model really uses. The peak depends on the chip *and* the dtype the matmuls run in
(bf16 and fp16 use the tensor cores; fp32 uses the plain FP32 units, or the TF32 tensor cores when
PyTorch allows TF32), so ``GPU_PEAK_TFLOPS`` holds one dense number per SKU and dtype. On a CPU, or
a GPU not in the table, we measure a matmul peak in that dtype instead.
"""

from __future__ import annotations

import re
import resource
import sys
import time
from collections.abc import Callable

import torch

from ..profiles import run_steps

# Dense (no 2:4 sparsity) peaks in TFLOP/s from the vendor data sheets and architecture whitepapers.
# NVIDIA prints tensor-core numbers "with sparsity" (marked *); the dense figure is half of that.
# fp16/bf16 are tensor-core peaks with FP32 accumulate (what PyTorch's matmuls use); fp32 is the
# non-tensor FP32 peak; tf32 the TF32 tensor-core peak. None: the chip has no such unit (Turing and
# Volta have no bf16 and no TF32). Sources:
#   H100 SXM / PCIe / NVL, H200, GH200: NVIDIA H100, H200 and GH200 data sheets (2023-2024);
#   A100 (SXM4 and PCIe alike): A100 data sheet; A10, A40, L4, L40, L40S, T4, V100: their data sheets;
#   RTX 4090: Ada (AD102) whitepaper, appendix; RTX 3090: Ampere GA102 whitepaper, appendix.
# The A10G (AWS G5) has no public NVIDIA data sheet, so it is deliberately absent: measured instead.
GPU_PEAK_TFLOPS: dict[str, dict[str, float | None]] = {
    #                fp32         tf32           fp16            bf16
    "H100 SXM":  {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5},
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "fp16": 756.5, "bf16": 756.5},
    "H100 NVL":  {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5},
    "H200 SXM":  {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5},
    "H200 NVL":  {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5},
    "GH200":     {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5},
    "A100":      {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
    "A40":       {"fp32": 37.4, "tf32": 74.8, "fp16": 149.7, "bf16": 149.7},
    "A10":       {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0, "bf16": 125.0},
    "L4":        {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0},
    "L40":       {"fp32": 90.5, "tf32": 90.5, "fp16": 181.05, "bf16": 181.05},
    "L40S":      {"fp32": 91.6, "tf32": 183.0, "fp16": 362.05, "bf16": 362.05},
    "RTX 4090":  {"fp32": 82.6, "tf32": 82.6, "fp16": 165.2, "bf16": 165.2},
    "RTX 3090":  {"fp32": 35.6, "tf32": 35.6, "fp16": 71.0, "bf16": 71.0},
    "T4":        {"fp32": 8.1, "tf32": None, "fp16": 65.0, "bf16": None},
    "V100 SXM2": {"fp32": 15.7, "tf32": None, "fp16": 125.0, "bf16": None},
    "V100 PCIe": {"fp32": 14.0, "tf32": None, "fp16": 112.0, "bf16": None},
}

# The names torch.cuda.get_device_name() reports, as token sets -> the SKU above. A name matches
# only when its tokens, less the vendor and memory words, are exactly one of these sets: "L40S" is
# not "L4", "H100 PCIe" is not the SXM part, "A10G" is not "A10", "RTX 4090 D" is nothing we know.
_SKU_TOKENS: dict[frozenset[str], str] = {
    frozenset(tokens.split()): sku for tokens, sku in [
        ("h100", "H100 SXM"),            # "NVIDIA H100 80GB HBM3"
        ("h100 sxm", "H100 SXM"), ("h100 sxm5", "H100 SXM"),
        ("h100 pcie", "H100 PCIe"),      # "NVIDIA H100 PCIe"
        ("h100 nvl", "H100 NVL"),        # "NVIDIA H100 NVL"
        ("h200", "H200 SXM"),            # "NVIDIA H200"
        ("h200 sxm", "H200 SXM"),
        ("h200 nvl", "H200 NVL"),        # "NVIDIA H200 NVL"
        ("gh200", "GH200"),              # "NVIDIA GH200 480GB"
        ("a100", "A100"), ("a100 sxm4", "A100"), ("a100 sxm", "A100"),  # "NVIDIA A100-SXM4-80GB"
        ("a100 pcie", "A100"),           # "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe"
        ("a40", "A40"), ("a10", "A10"),  # "NVIDIA A40", "NVIDIA A10"
        ("l4", "L4"), ("l40", "L40"), ("l40s", "L40S"),                 # "NVIDIA L4", "NVIDIA L40S"
        ("rtx 4090", "RTX 4090"), ("rtx 3090", "RTX 3090"),  # "NVIDIA GeForce RTX 4090"
        ("t4", "T4"),                    # "Tesla T4"
        ("v100 sxm2", "V100 SXM2"), ("v100", "V100 SXM2"),   # "Tesla V100-SXM2-16GB"
        ("v100 pcie", "V100 PCIe"),      # "Tesla V100-PCIE-32GB"
    ]
}
_IGNORED_TOKEN = re.compile(r"nvidia|tesla|geforce|\d+gb|hbm\d*e?")  # vendor, brand and memory words
_DTYPE_KEYS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


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


def gpu_sku(name: str) -> str | None:
    """The SKU in ``GPU_PEAK_TFLOPS`` for a device name ("NVIDIA H100 PCIe" -> "H100 PCIe"), else None."""
    if not isinstance(name, str):
        raise TypeError(f"a GPU name must be a str, got {type(name).__name__}")
    tokens = frozenset(t for t in re.findall(r"[a-z0-9]+", name.lower()) if not _IGNORED_TOKEN.fullmatch(t))
    return _SKU_TOKENS.get(tokens)


def tf32_matmul_enabled() -> bool:
    """Whether PyTorch may run float32 CUDA matmuls on the TF32 tensor cores."""
    matmul = torch.backends.cuda.matmul
    try:
        return bool(matmul.allow_tf32)
    except RuntimeError:  # newer torch refuses to answer when the old and new TF32 APIs were mixed
        return getattr(matmul, "fp32_precision", "") == "tf32"


def gpu_peak_flops(name: str | None = None, dtype: torch.dtype = torch.bfloat16, *,
                   tf32: bool | None = None) -> float | None:
    """Dense peak FLOP/s of a GPU in ``dtype`` ("NVIDIA H100 PCIe", bf16 -> 756.5e12).

    None when the name is not in the table or the chip has no unit for ``dtype`` (bf16 on a T4).
    float32 gives the plain FP32 peak, or the TF32 tensor-core peak when TF32 matmuls are allowed
    (``tf32=None`` reads ``torch.backends.cuda.matmul.allow_tf32``).
    """
    if name is None:
        if not torch.cuda.is_available():
            _dtype_key(dtype)  # still reject a bad dtype
            return None
        name = torch.cuda.get_device_name()
    return _table_peak(name, dtype, tf32)[0]


def _table_peak(name: str, dtype: torch.dtype, tf32: bool | None) -> tuple[float | None, str]:
    """(data-sheet FLOP/s or None, the table column used: "bf16", "fp16", "fp32" or "tf32")."""
    key = _dtype_key(dtype)
    sku = gpu_sku(name)
    if sku is None:
        return None, key
    peaks = GPU_PEAK_TFLOPS[sku]
    if key == "fp32" and peaks["tf32"] is not None and (tf32_matmul_enabled() if tf32 is None else tf32):
        key = "tf32"  # float32 matmuls run on the TF32 tensor cores (chips without them stay fp32)
    tflops = peaks[key]
    return (None if tflops is None else tflops * 1e12), key


def _dtype_key(dtype) -> str:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {type(dtype).__name__}")
    if dtype not in _DTYPE_KEYS:
        raise ValueError(f"no data-sheet peak for {dtype}; use torch.bfloat16, torch.float16 or torch.float32")
    return _DTYPE_KEYS[dtype]


def measure_matmul_flops(n: int = 1024, repeats: int = 10, *, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> float:
    """Achieved FLOP/s of an n×n @ n×n matmul (2n³ FLOPs), best of ``repeats``: a practical peak."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = min(time_runs(lambda: a @ b, repeats=repeats, warmup=1, device=device))  # (n, n) @ (n, n)
    return 2.0 * n**3 / best


def peak_flops(device: str | torch.device, dtype: torch.dtype | None = None) -> tuple[float, str]:
    """(peak FLOP/s, where the number comes from) for matmuls in ``dtype`` on ``device``.

    GPUs in the table get the data-sheet number; other GPUs and CPUs get a measured matmul in that
    dtype. ``dtype=None`` keeps the old default: bf16 on a GPU, float32 on a CPU (what the lessons
    train in there).
    """
    device = torch.device(device)
    if device.type == "cuda":
        dtype = torch.bfloat16 if dtype is None else dtype
        name = torch.cuda.get_device_name(device)
        table, key = _table_peak(name, dtype, None)
        if table is not None:
            return table, f"data sheet ({name}, dense {key})"
        return (measure_matmul_flops(4096, 5, device=device, dtype=dtype),
                f"measured {key} matmul ({name})")
    dtype = torch.float32 if dtype is None else dtype
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    key = _DTYPE_KEYS.get(dtype, str(dtype).removeprefix("torch."))
    return measure_matmul_flops(1024, 10, device=device, dtype=dtype), f"measured {key} matmul ({device.type})"


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


def time_runs(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1, number: int = 1,
              device: str | torch.device | None = None) -> list[float]:
    """The lab's one timer: seconds per call of ``fn()``, one entry per repeat (each the mean of
    ``number`` back-to-back calls), after ``warmup`` untimed calls.

    GPUs run asynchronously: a call returns once its kernels are queued. So the device is
    synchronised before and after every timed block, and the time covers the work, not the launch.
    ``device=None`` synchronises every accelerator torch has started (the current CUDA device, MPS).
    """
    if repeats < 1 or number < 1 or warmup < 0:
        raise ValueError(f"need repeats ≥ 1, number ≥ 1 and warmup ≥ 0, got repeats={repeats}, "
                         f"number={number}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)                 # earlier work must not land in this block
        start = time.perf_counter()
        for _ in range(number):
            fn()
        synchronize(device)                 # wait for the work just queued
        times.append((time.perf_counter() - start) / number)
    return times


def time_steps(step: Callable[[], object], steps: int, *, warmup: int = 2,
               device: str | torch.device | None = None) -> float:
    """Mean seconds per call of ``step()`` after ``warmup`` untimed calls (``time_runs`` with one
    block of ``steps`` calls)."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    # training steps too: a dry run (profiles.run_steps) times a few, and its time means nothing
    return time_runs(step, repeats=1, warmup=run_steps(warmup), number=run_steps(steps), device=device)[0]


def throughput_report(*, tokens_per_step: int, seconds_per_step: float, flops_per_tok: float,
                      device: str | torch.device, dtype: torch.dtype | None = None) -> dict:
    """tokens/s, achieved TFLOP/s, the peak and MFU, as one dict (a row of the lesson's table).

    ``dtype`` is what the matmuls run in (see ``peak_flops``; None: bf16 on a GPU, float32 on a CPU).
    """
    if not seconds_per_step > 0:
        raise ValueError(f"seconds_per_step must be positive, got {seconds_per_step}")
    peak, source = peak_flops(device, dtype)
    tps = tokens_per_step / seconds_per_step
    return {
        "device": str(device),
        "tokens_per_second": tps,
        "achieved_tflops": tps * flops_per_tok / 1e12,
        "peak_tflops": peak / 1e12,
        "peak_source": source,
        "mfu": mfu(tps, flops_per_tok, peak),
    }


def synchronize(device: str | torch.device | None = None) -> None:
    """Wait for queued accelerator work (a no-op on CPU), so a timer reads the work itself.
    ``device=None``: every accelerator torch has started."""
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        if torch.backends.mps.is_available():
            torch.mps.synchronize()
        return
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def preferred_amp_dtype(device: str | torch.device) -> str | None:
    """"bf16" on GPUs with native bf16 (compute capability ≥ 8.0: A100, L4, H100), "fp16" on older
    GPUs such as Colab's T4 (fp16 needs a GradScaler), None (fp32) elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"
