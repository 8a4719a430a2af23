"""The IO model of attention: bytes moved between slow memory (HBM) and fast memory (SRAM), and FLOPs.

Dao et al. (2022, Theorem 2): standard attention reads and writes Θ(T·D + T·S) elements of HBM (it writes the
scores and the weights, then reads them back), FlashAttention Θ(T·S·D²/M) for an SRAM of M elements (each
query block re-reads K and V, and a larger SRAM means fewer, larger blocks). On a GPU the time of an op is
roughly max(FLOPs / peak FLOP/s, bytes / bandwidth), so bytes, not FLOPs, decide which attention is faster.

The counts here are exact for the lab's own loops: ``flash.tiled_forward(..., io=IOCounter())`` counts every
tile it reads and writes, and ``naive_attention_counted`` does the same for the three passes of Algorithm 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .flash import key_blocks


@dataclass(frozen=True)
class Traffic:
    """Bytes read from and written to slow memory."""

    read: int
    write: int

    @property
    def total(self) -> int:
        return self.read + self.write


class IOCounter:
    """Counts the bytes of every tensor a loop reads from slow memory or writes back (``read``, ``write``)."""

    def __init__(self) -> None:
        self.read_bytes = self.write_bytes = 0

    def read(self, tile: torch.Tensor) -> None:
        self.read_bytes += tile.numel() * tile.element_size()

    def write(self, tile: torch.Tensor) -> None:
        self.write_bytes += tile.numel() * tile.element_size()

    @property
    def traffic(self) -> Traffic:
        return Traffic(self.read_bytes, self.write_bytes)


def naive_bytes(T: int, S: int, D: int, Dv: int | None = None, *, batch: int = 1, itemsize: int = 4) -> Traffic:
    """Algorithm 0 (Dao et al. 2022): Z = s·QKᵀ written out; read back, P = softmax(Z) written out; P and V
    read, O written. Θ(T·D + T·S): the two (T, S) matrices dominate."""
    Dv = D if Dv is None else Dv
    read = T * D + S * D + T * S + T * S + S * Dv        # Q, K | Z | P, V
    write = T * S + T * S + T * Dv                       # Z | P | O
    return Traffic(batch * read * itemsize, batch * write * itemsize)


def tiled_forward_bytes(T: int, S: int, D: int, Dv: int | None = None, *, block_q: int, block_k: int,
                        causal: bool = False, batch: int = 1, itemsize: int = 4, lse_itemsize: int = 4) -> Traffic:
    """``flash.tiled_forward``: Q read once; for every query block, the K and V blocks it visits; O and the
    float32 lse written once. Without causal that is Q + ⌈T/block_q⌉·(K + V) + O + lse."""
    Dv = D if Dv is None else Dv
    keys_read = sum(j1 - j0 for i0 in range(0, T, block_q)
                    for j0, j1, _ in key_blocks(i0, min(i0 + block_q, T), T, S, block_k, causal))
    read = (T * D + keys_read * (D + Dv)) * itemsize
    write = T * Dv * itemsize + T * lse_itemsize
    return Traffic(batch * read, batch * write)


def fa1_blocks(D: int, sram_elements: int) -> tuple[int, int]:
    """FlashAttention's tile sizes for an SRAM of M elements (Algorithm 1): B_c = ⌈M / 4D⌉ keys,
    B_r = min(B_c, D) queries, so that Q_I, K_J, V_J and O_I fit together."""
    block_k = math.ceil(sram_elements / (4 * D))
    return min(block_k, D), block_k


def theorem2_elements(T: int, S: int, D: int, sram_elements: int) -> float:
    """The order of FlashAttention's HBM accesses in Theorem 2, T·S·D²/M (elements; constants dropped)."""
    return T * S * D * D / sram_elements


def attention_flops(T: int, S: int, D: int, Dv: int | None = None, *, causal: bool = False) -> dict[str, int]:
    """Matmul FLOPs (2 per multiply-add) over the (i, j) pairs that may attend.

    forward 2·n·(D + Dv) for Z = QKᵀ and O = PV; backward 4·n·(D + Dv) for dV = PᵀdO, dP = dO Vᵀ, dQ = dZ K,
    dK = dZᵀQ; the tiled backward adds ``recompute`` = 2·n·D to rebuild Z (then P) instead of reading it.
    n = T·S, or the pairs under the bottom-right causal mask.
    """
    Dv = D if Dv is None else Dv
    pairs = sum(min(S, max(0, i + S - T + 1)) for i in range(T)) if causal else T * S
    return {"pairs": pairs, "forward": 2 * pairs * (D + Dv), "backward": 4 * pairs * (D + Dv),
            "recompute": 2 * pairs * D}


def roofline_seconds(flops: float, nbytes: float, peak_flops: float, bandwidth: float) -> float:
    """The roofline's lower bound on time: the slower of computing and moving the bytes."""
    return max(flops / peak_flops, nbytes / bandwidth)


def naive_attention_counted(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, io: IOCounter,
                            scale: float | None = None) -> torch.Tensor:
    """Algorithm 0 with every read and write of slow memory counted: three passes, two (…, T, S) matrices."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    io.read(q), io.read(k)
    z = scale * q @ k.transpose(-2, -1)                  # (..., T, D) @ (..., D, S) -> (..., T, S)
    io.write(z)
    io.read(z)
    p = torch.softmax(z, dim=-1)                          # (..., T, S)
    io.write(p)
    io.read(p), io.read(v)
    out = p @ v                                           # (..., T, S) @ (..., S, Dv) -> (..., T, Dv)
    io.write(out)
    return out


__all__ = ["IOCounter", "Traffic", "attention_flops", "fa1_blocks", "naive_attention_counted", "naive_bytes",
           "roofline_seconds", "theorem2_elements", "tiled_forward_bytes"]
