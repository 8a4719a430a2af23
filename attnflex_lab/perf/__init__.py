"""Speed: FLOPs and MFU, the one timer (device-synchronised), mixed precision, the benchmark runner.

``flops`` holds the FLOP counts, peak tables, MFU and the timer; ``amp`` the mixed-precision helpers; ``bench``
runs the scripts in benchmarks/. The names of ``flops`` are re-exported here, so ``attnflex_lab.perf.mfu`` reads as
it did before the package was regrouped.
"""

from .flops import (
    count_params,
    flops_per_token,
    gpu_peak_flops,
    gpu_sku,
    measure_matmul_flops,
    mfu,
    peak_flops,
    peak_memory_bytes,
    preferred_amp_dtype,
    reset_peak_memory,
    synchronize,
    tf32_matmul_enabled,
    throughput_report,
    time_runs,
    time_steps,
)

__all__ = [
    "count_params",
    "flops_per_token",
    "gpu_peak_flops",
    "gpu_sku",
    "measure_matmul_flops",
    "mfu",
    "peak_flops",
    "peak_memory_bytes",
    "preferred_amp_dtype",
    "reset_peak_memory",
    "synchronize",
    "tf32_matmul_enabled",
    "throughput_report",
    "time_runs",
    "time_steps",
]
