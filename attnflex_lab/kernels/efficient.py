"""Attention with less than O(T·S) work or memory: sliding windows, linear attention, shared K/V heads.

- **Sliding-window (local) attention** (Beltagy et al. 2020, Longformer; Mistral 7B): query i sees only
  the ``window`` most recent keys. As a mask it still computes T·S scores; computed as a band, each
  block of queries touches only the keys it can see, so work and memory are O(T·window).
- **Linear attention** (Katharopoulos et al. 2020): replace e^(q·k) by φ(q)·φ(k) with φ = elu + 1,
  so Σ_j φ(q_i)·φ(k_j) v_j = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ): a (D, Dv) state instead of a (T, S) matrix.
  The causal form keeps a running state; here it is computed in chunks (quadratic inside a chunk,
  a prefix sum across chunks), so memory is O(T·D + (T / chunk)·D·Dv).
- **Multi-query / grouped-query attention** (Shazeer 2019; Ainslie et al. 2023): H query heads share
  G ≤ H key/value heads, shrinking the KV cache of generation by H / G.

Shapes follow ``functional.attention``: q (..., T, D), k (..., S, D), v (..., S, Dv), True = may attend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._validate import check_attention_inputs, check_min_dims, check_scale
from ..functional import attention, default_scale, masked_softmax


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


# --- sliding window ------------------------------------------------------------------------------

def sliding_window_mask(T: int, S: int | None = None, *, window: int,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """(T, S) bool mask: query i sees keys j with i' − window < j ≤ i', where i' = i + S − T
    (bottom-right aligned, as ``modules.causal_mask``). ``window`` = S gives the causal mask."""
    S = T if S is None else S
    _check_positive("window", window)
    rows = torch.arange(T, device=device).unsqueeze(-1) + (S - T)   # (T, 1): i'
    cols = torch.arange(S, device=device)                           # (S,)
    return (cols <= rows) & (cols > rows - window)                  # (T, S)


def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, window: int,
                             block: int | None = None, scale: float | None = None) -> torch.Tensor:
    """Causal sliding-window attention computed as a band: O(T·window) scores, never (T, S).

    Equal to ``functional.attention(q, k, v, sliding_window_mask(T, S, window=window))[0]``.
    Each block of ``block`` queries (default: ``window``) reads only the keys it can see:
    from i0' − window + 1 to i1' − 1, at most block + window − 1 of them.
    """
    check_attention_inputs(q, k, v)
    _check_positive("window", window)
    block = _check_positive("block", window if block is None else block)
    scale = default_scale(q) if scale is None else check_scale(scale)
    T, S = q.shape[-2], k.shape[-2]
    outs = []
    for i0 in range(0, T, block):
        i1 = min(i0 + block, T)
        lo, hi = max(0, i0 + S - T - window + 1), max(0, min(S, i1 + S - T))   # keys [lo, hi)
        if hi <= lo:  # queries before the first key (T > S): nothing to attend to
            outs.append(q.new_zeros(*q.shape[:-2], i1 - i0, v.shape[-1]))
            continue
        band = sliding_window_mask(i1 - i0, hi - lo, window=window, device=q.device)  # rows end at hi
        # the band's rows are queries i0..i1−1, aligned so that the last one sees key hi − 1
        scores = (q[..., i0:i1, :] * scale) @ k[..., lo:hi, :].transpose(-2, -1)  # (..., b, hi − lo)
        outs.append(masked_softmax(scores, band) @ v[..., lo:hi, :])               # (..., b, Dv)
    return torch.cat(outs, dim=-2)                                                 # (..., T, Dv)


# --- linear attention ----------------------------------------------------------------------------

def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 > 0, Katharopoulos et al.'s feature map (positive, so weights stay ≥ 0)."""
    return F.elu(x) + 1


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                     chunk: int = 64, eps: float = 1e-6) -> torch.Tensor:
    """out_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / φ(q_i)ᵀ Σ_j φ(k_j), over all j, or j ≤ i when ``causal``
    (causal needs T = S). Work and memory are linear in T."""
    check_attention_inputs(q, k, v)
    chunk = _check_positive("chunk", chunk)
    fq, fk = elu_feature_map(q), elu_feature_map(k)                   # (..., T, D), (..., S, D)
    if not causal:
        state = fk.transpose(-2, -1) @ v                              # (..., D, S) @ (..., S, Dv) -> (..., D, Dv)
        norm = fk.sum(dim=-2).unsqueeze(-1)                           # (..., D, 1)
        return (fq @ state) / (fq @ norm + eps)                       # (..., T, Dv) / (..., T, 1)
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal linear attention needs T = S, got q {tuple(q.shape)} and "
                         f"k {tuple(k.shape)}")
    state = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])      # Σ_{j<c0} φ(k_j) v_jᵀ: (..., D, Dv)
    norm = q.new_zeros(*q.shape[:-2], q.shape[-1], 1)                 # Σ_{j<c0} φ(k_j): (..., D, 1)
    outs = []
    for c0 in range(0, q.shape[-2], chunk):
        qc, kc, vc = fq[..., c0:c0 + chunk, :], fk[..., c0:c0 + chunk, :], v[..., c0:c0 + chunk, :]
        inside = (qc @ kc.transpose(-2, -1)).tril()                   # (..., c, c): j ≤ i inside the chunk
        numerator = qc @ state + inside @ vc                          # (..., c, Dv)
        denominator = qc @ norm + inside.sum(dim=-1, keepdim=True)    # (..., c, 1)
        outs.append(numerator / (denominator + eps))
        state = state + kc.transpose(-2, -1) @ vc                     # fold the chunk into the prefix
        norm = norm + kc.sum(dim=-2).unsqueeze(-1)
    return torch.cat(outs, dim=-2)                                    # (..., T, Dv)


def linear_attention_quadratic(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                               eps: float = 1e-6) -> torch.Tensor:
    """The same values through the (T, S) matrix φ(Q) φ(K)ᵀ: the check for ``linear_attention``."""
    check_attention_inputs(q, k, v)
    weights = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)   # (..., T, S), all > 0
    if causal:
        weights = weights.tril(diagonal=k.shape[-2] - q.shape[-2])
    return (weights @ v) / (weights.sum(dim=-1, keepdim=True) + eps)


# --- multi-query and grouped-query attention ------------------------------------------------------

def grouped_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            mask: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """q (B, H, T, D) with k (B, G, S, D), v (B, G, S, Dv): query heads h·G/H .. share K/V head g.

    G = H is multi-head attention, G = 1 multi-query attention (Shazeer 2019), 1 < G < H grouped-query
    attention (Ainslie et al. 2023). Query head h uses key/value head h // (H / G). Returns (B, H, T, Dv).
    ``mask`` broadcasts to (B, H, T, S).
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_min_dims(name, x, 4, "(B, heads, length, width)")
    H, G = q.shape[1], k.shape[1]
    if G < 1 or H % G or v.shape[1] != G or q.shape[0] != k.shape[0]:
        raise ValueError(f"grouped-query attention needs q (B, H, T, D) and k, v (B, G, S, ·) with G "
                         f"dividing H; got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    B, T = q.shape[0], q.shape[2]
    qg = q.reshape(B, G, H // G, T, q.shape[-1])              # (B, H, T, D) -> (B, G, H/G, T, D)
    kg = k.unsqueeze(2).expand(-1, -1, H // G, -1, -1)        # (B, G, S, D) -> (B, G, H/G, S, D), a view
    vg = v.unsqueeze(2).expand(-1, -1, H // G, -1, -1)        # (B, G, S, Dv) -> (B, G, H/G, S, Dv)
    if mask is not None:
        mask = mask.expand(B, H, T, k.shape[2]).reshape(B, G, H // G, T, k.shape[2])
    out, _ = attention(qg, kg, vg, mask, scale)               # (B, G, H/G, T, Dv)
    return out.reshape(B, H, T, v.shape[-1])                  # -> (B, H, T, Dv)


__all__ = ["elu_feature_map", "grouped_query_attention", "linear_attention", "linear_attention_quadratic",
           "sliding_window_attention", "sliding_window_mask"]
