"""SDPA backends against sequence length: peak memory and forward + backward time (lesson 06).

``sdpa_sweep`` measures ``F.scaled_dot_product_attention`` forward + backward for each T and each
backend that runs on the device, with ``attnflex_lab.kernels.memory`` (``peak_bytes``, ``time_call``):
nothing here measures on its own. A T where the device runs out of memory is kept as a row with
``out_of_memory=True`` and named in the plot's legend, not mistaken for a missing kernel.
``plot_sdpa_sweep`` draws one measure against T, one line per backend; ``explore_sdpa_sweep`` is a
core-ipywidgets dropdown over the measures (and a log-axes checkbox) redrawing through
``interactive_output``, so it works in ipywidgets 7.7 and 8.

On CPU the peak is the bytes of the tensors that ops return (see ``memory.peak_bytes``): scratch a
fused kernel allocates inside itself is not seen there. On CUDA it is the allocator's high-water mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..kernels.memory import peak_bytes, time_call

BACKENDS = (SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.CUDNN_ATTENTION)
_NO_KERNEL = ("no available kernel", "no viable backend")  # how SDPA says "this backend is not here"
MEASURES = {"peak memory (MiB)": "peak_mib", "forward + backward (ms)": "ms"}


@dataclass(frozen=True)
class SweepRow:
    backend: str       # SDPBackend name, e.g. "MATH"
    seq_len: int       # T (= S: self-attention)
    peak_bytes: int    # high-water mark of forward + backward, above what existed before
    seconds: float     # median seconds per forward + backward
    out_of_memory: bool = False  # the device ran out of memory at this T (no numbers: NaN seconds)

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def ms(self) -> float:
        return 1e3 * self.seconds


def _fwd_bwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, causal: bool):
    def run():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)   # (B, H, T, D)
        out.backward(grad)
        q.grad = k.grad = v.grad = None            # keep nothing between calls
    return run


def sdpa_sweep(seq_lens: Sequence[int], *, batch: int = 1, heads: int = 4, head_dim: int = 64,
               dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
               causal: bool = True, backends: Sequence[SDPBackend] = BACKENDS, repeats: int = 3,
               seed: int = 0) -> list[SweepRow]:
    """One row per (backend that runs here, T): peak bytes and seconds of forward + backward."""
    if not seq_lens or any(t < 1 for t in seq_lens):
        raise ValueError(f"seq_lens must be positive lengths, got {list(seq_lens)}")
    device = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rows = []
    for backend in backends:
        for t in seq_lens:
            q, k, v, grad = (torch.randn(batch, heads, t, head_dim, generator=gen).to(device, dtype)
                             for _ in range(4))                               # (B, H, T, D) each
            for x in (q, k, v):
                x.requires_grad_(True)
            run = _fwd_bwd(q, k, v, grad, causal)
            try:
                with sdpa_kernel(backend):
                    seconds = time_call(run, repeats=repeats, warmup=1, device=device)
                    peak = peak_bytes(run, device)
            except torch.cuda.OutOfMemoryError:        # a result, not a missing kernel: keep it
                del q, k, v, grad, run
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                rows.append(SweepRow(backend.name, t, 0, float("nan"), out_of_memory=True))
                break                                  # longer sequences need more still
            except RuntimeError as err:
                if not any(words in str(err).lower() for words in _NO_KERNEL):
                    raise                              # a real failure, not "not on this device"
                break
            rows.append(SweepRow(backend.name, t, peak, seconds))
    return rows


def _series(rows: Sequence[SweepRow], measure: str) -> dict[str, tuple[list[int], list[float]]]:
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {list(MEASURES)}, got {measure!r}")
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in sorted(rows, key=lambda r: (r.backend, r.seq_len)):
        if row.out_of_memory:
            continue
        ts, ys = series.setdefault(row.backend, ([], []))
        ts.append(row.seq_len)
        ys.append(getattr(row, MEASURES[measure]))
    return series


def plot_sdpa_sweep(rows: Sequence[SweepRow], *, measure: str = "peak memory (MiB)",
                    log_axes: bool = True, ax=None):
    """One line per backend: ``measure`` against T. Returns the Axes."""
    series = _series(rows, measure)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.2), layout="constrained")
    out_of_memory = {row.backend: row.seq_len for row in rows if row.out_of_memory}
    for backend, (ts, ys) in series.items():
        oom = f" (out of memory at T={out_of_memory[backend]})" if backend in out_of_memory else ""
        ax.plot(ts, ys, marker="o", label=backend.lower() + oom)
    if log_axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ax.set(xlabel="sequence length T", ylabel=measure, title=f"SDPA forward + backward: {measure}")
    ax.legend()
    return ax


def explore_sdpa_sweep(rows: Sequence[SweepRow]) -> widgets.VBox:
    """Build (not display) a dropdown over the measures and a log-axes checkbox over ``rows``."""
    if not rows:
        raise ValueError("explore_sdpa_sweep needs at least one measured row")
    measure_menu = widgets.Dropdown(options=list(MEASURES), value="peak memory (MiB)",
                                    description="measure", style={"description_width": "initial"})
    log_box = widgets.Checkbox(value=True, description="log axes")

    def redraw(measure: str, log_axes: bool) -> None:
        plot_sdpa_sweep(rows, measure=measure, log_axes=log_axes)
        plt.show()

    output = widgets.interactive_output(redraw, {"measure": measure_menu, "log_axes": log_box})
    return widgets.VBox([widgets.HBox([measure_menu, log_box]), output])


__all__ = ["BACKENDS", "MEASURES", "SweepRow", "explore_sdpa_sweep", "plot_sdpa_sweep", "sdpa_sweep"]
