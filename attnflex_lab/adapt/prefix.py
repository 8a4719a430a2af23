"""Prefix tuning (Li & Liang 2021): learned keys and values in front of every attention layer.

Each ``MultiHeadAttention`` gets P key vectors and P value vectors (P, C) of its own, prepended to
the keys and values that the layer projects from its input. Every query may attend to them, so a
prefix steers what each layer reads and mixes in, while no weight of the model changes. With P = 0
the layer is exactly the base layer. This is attention-specific: adapters and LoRA could sit in
any network, a prefix only means something where there are keys and values.

Li & Liang train the prefix through a small MLP, because optimising it directly was unstable for
them at GPT-2 scale; at the lab's size the prefix is a plain parameter (simpler). It trains, but
only with a learning rate ten times LoRA's (``transfer.LEARNING_RATES``; lesson 10 measures both).

What a prefix can and cannot do (He et al. 2022, "Towards a unified view of parameter-efficient
transfer learning", eq. 7): split softmax's denominator into the prefix's part and the keys' part,

    attn(q, [P_K; K], [P_V; V]) = λ(q) · attn(q, P_K, P_V) + (1 − λ(q)) · attn(q, K, V),
    λ(q) = Z_P / (Z_P + Z_K) = sigmoid(lse(q P_Kᵀ s) − lse(q Kᵀ s)),

(``prefix_decomposition``). The base attention over the input's keys keeps its shape: a prefix
can only blend in a mix of its own values, gated by the query. It cannot make a head read another
input position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PrefixConfig:
    length: int = 4          # P: learned key/value positions per layer
    init_std: float = 0.02   # the prefix starts small, as GPT-2-style weights do

    def __post_init__(self):
        if not isinstance(self.length, int) or isinstance(self.length, bool) or self.length < 0:
            raise ValueError(f"prefix length must be a non-negative int, got {self.length!r}")
        if not self.init_std >= 0:
            raise ValueError(f"prefix init_std must be non-negative, got {self.init_std!r}")


class KVPrefix(nn.Module):
    """(k, v, mask) -> (prefix_k ++ k, prefix_v ++ v, mask with P always-allowed keys in front)."""

    def __init__(self, width: int, cfg: PrefixConfig):
        super().__init__()
        self.length = cfg.length
        self.keys = nn.Parameter(cfg.init_std * torch.randn(cfg.length, width))    # (P, C)
        self.values = nn.Parameter(cfg.init_std * torch.randn(cfg.length, width))  # (P, C)

    def forward(self, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None):
        B = k.shape[0]
        k = torch.cat([self.keys.expand(B, -1, -1), k], dim=1)     # (B, P, C) ++ (B, S, C) -> (B, P + S, C)
        v = torch.cat([self.values.expand(B, -1, -1), v], dim=1)   # (B, P + S, C)
        if mask is not None and mask.shape[-1] != 1:               # a mask of width 1 broadcasts already
            allowed = mask.new_ones(*mask.shape[:-1], self.length)  # (..., P): every query may read the prefix
            mask = torch.cat([allowed, mask], dim=-1)              # (..., P + S)
        return k, v, mask

    def extra_repr(self) -> str:
        return f"length={self.length}, width={self.keys.shape[1]}"


def prefix_decomposition(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_k: torch.Tensor,
                         prefix_v: torch.Tensor, scale: float):
    """(λ, prefix-only attention, base attention) of one head with a K/V prefix, no mask.

    q (..., T, D), k (..., S, D), v (..., S, Dv), prefix_k (P, D), prefix_v (P, Dv). Returns
    λ (..., T), attn(q, P_K, P_V) (..., T, Dv) and attn(q, K, V) (..., T, Dv), whose mix
    λ · prefix + (1 − λ) · base is attention over the concatenation [P_K; K], [P_V; V].
    """
    if prefix_k.dim() != 2 or prefix_v.dim() != 2 or prefix_k.shape[0] != prefix_v.shape[0]:
        raise ValueError(f"prefix_k (P, D) and prefix_v (P, Dv) must be 2-D with one row per prefix "
                         f"position, got {tuple(prefix_k.shape)} and {tuple(prefix_v.shape)}")
    if prefix_k.shape[-1] != q.shape[-1] or k.shape[-1] != q.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and prefix_k {tuple(prefix_k.shape)} "
                         "must share the last dim D")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must have one row per key (the same S)")
    scores_p = scale * q @ prefix_k.T                     # (..., T, D) @ (D, P) -> (..., T, P)
    scores_k = scale * q @ k.transpose(-2, -1)            # (..., T, D) @ (..., D, S) -> (..., T, S)
    gate = torch.sigmoid(scores_p.logsumexp(-1) - scores_k.logsumexp(-1))  # Z_P / (Z_P + Z_K): (..., T)
    prefix_out = scores_p.softmax(-1) @ prefix_v          # (..., T, P) @ (P, Dv) -> (..., T, Dv)
    base_out = scores_k.softmax(-1) @ v                   # (..., T, S) @ (..., S, Dv) -> (..., T, Dv)
    return gate, prefix_out, base_out


def add_prefix(model: nn.Module, cfg: PrefixConfig | None = None) -> list[KVPrefix]:
    """Give every ``MultiHeadAttention`` in ``model`` a learned K/V prefix, in place. Returns them."""
    from ..modules import MultiHeadAttention

    cfg = cfg or PrefixConfig()
    attentions = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not attentions:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention to give a prefix")
    if any(m.kv_prefix is not None for m in attentions):
        raise ValueError("this model already has a prefix; build a fresh model to start again")
    prefixes = []
    for attention in attentions:
        weight = attention.proj.weight
        attention.kv_prefix = KVPrefix(weight.shape[1], cfg).to(device=weight.device, dtype=weight.dtype)
        prefixes.append(attention.kv_prefix)
    return prefixes
