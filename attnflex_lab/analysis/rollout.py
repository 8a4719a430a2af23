"""Attention rollout (Abnar & Zuidema 2020) as tensor math: no plotting, on the maps' own device.

Dimension legend: L layers, B batch, H heads, T tokens (self-attention: queries = keys).

One layer's map says where a position looks, but after layer 1 a "position" is already a mixture
of tokens. Rollout follows the mixing through the stack. With head-fused weights W_l and the
residual connection counted as attention to oneself,

    Ã_l = normalise_rows(½·W_l + ½·I),     R = Ã_L · Ã_{L-1} · … · Ã_1,

and R[i, j] is the share of token j in output position i. ``explain`` reads the [CLS] row of R as
an importance score per patch; ``viz.rollout`` draws it.
"""

from __future__ import annotations

import torch

HEAD_FUSIONS = ("mean", "max", "min")


def rollout(maps: torch.Tensor, *, head_fusion: str = "mean", residual: bool = True) -> torch.Tensor:
    """(..., T, T) rollout from per-layer self-attention maps (L, ..., H, T, T), layer 0 first.

    Any dims between L and H are batch dims (e.g. (L, B, H, T, T) -> (B, T, T)). The result has the
    maps' device and at least float32 precision (float64 maps stay float64).
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() < 4:
        raise ValueError(f"maps must be a tensor (L, ..., H, T, T), got "
                         f"{tuple(getattr(maps, 'shape', ())) or type(maps).__name__}")
    if maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"rollout needs self-attention maps (T == S), got T={maps.shape[-2]}, "
                         f"S={maps.shape[-1]}")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion {head_fusion!r} is not one of {HEAD_FUSIONS}")
    maps = maps.to(torch.promote_types(maps.dtype, torch.float32))
    if head_fusion == "mean":
        fused = maps.mean(-3)                                        # (L, ..., H, T, T) -> (L, ..., T, T)
    else:
        fused = getattr(maps, head_fusion)(-3).values
    T = maps.shape[-1]
    identity = torch.eye(T, dtype=maps.dtype, device=maps.device)  # (T, T)
    result = identity.expand(fused.shape[1:]).clone()              # (..., T, T)
    for layer_map in fused:                                        # from the first layer up
        mixed = 0.5 * layer_map + 0.5 * identity if residual else layer_map   # (..., T, T)
        mixed = mixed / mixed.sum(-1, keepdim=True).clamp(min=1e-12)           # rows sum to 1
        result = mixed @ result                                    # (..., T, T) @ (..., T, T)
    return result
