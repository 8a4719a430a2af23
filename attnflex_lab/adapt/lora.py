"""LoRA (Hu et al. 2021) on the query and value projections of the lab's ``MultiHeadAttention``.

A frozen weight W₀ (C_out, C_in) gets a trainable low-rank update,

    W = W₀ + (α / r) · B A,      A (r, C_in), B (C_out, r),  r ≪ C,

so h = x W₀ᵀ + (α / r) · (x Aᵀ) Bᵀ. B starts at zero, so the adapted model starts as the base
model, and only r · (C_in + C_out) numbers per target are trained. ``merge`` folds B A into W₀ for
inference (no extra matmul); ``unmerge`` takes it out again.

The lab's attention computes q, k and v with one fused ``qkv`` Linear (C -> 3C). ``LoRAQKV`` wraps
that Linear and gives each target slice (q, k or v) its own A and B; untargeted slices are left
exactly as they were. It keeps ``weight`` and ``bias`` readable, with the update included, because
cross-attention reads ``qkv.weight`` directly instead of calling the layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SLICES = ("q", "k", "v")  # the order of the fused projection's output: [q | k | v]


@dataclass
class LoRAConfig:
    rank: int = 4                        # r: the update's rank (Hu et al. found 1-8 enough for q, v)
    alpha: float = 8.0                   # α: the update is scaled by α / r, so changing r keeps its size
    targets: tuple[str, ...] = ("q", "v")  # which slices of the fused qkv projection get an update

    def __post_init__(self):
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank <= 0:
            raise ValueError(f"LoRA rank must be a positive int, got {self.rank!r}")
        if not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha!r}")
        self.targets = tuple(self.targets) if not isinstance(self.targets, str) else (self.targets,)
        bad = [t for t in self.targets if t not in SLICES]
        if bad or not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"LoRA targets must be distinct names from {SLICES}, got {self.targets!r}")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


class LoRAQKV(nn.Module):
    """A fused qkv Linear (C -> 3C) with a low-rank update on the target slices; the base is frozen."""

    def __init__(self, base: nn.Linear, cfg: LoRAConfig):
        super().__init__()
        if not isinstance(base, nn.Linear) or base.out_features != 3 * base.in_features:
            raise TypeError(f"LoRAQKV wraps a fused qkv nn.Linear (C -> 3C), got {base!r}")
        width = base.in_features
        if cfg.rank > width:
            raise ValueError(f"LoRA rank {cfg.rank} exceeds the projection width {width}: a rank-r "
                             f"update of a {width}×{width} matrix needs r ≤ {width}")
        self.base, self.cfg, self.width = base, cfg, width
        base.requires_grad_(False)
        self.lora_A = nn.ParameterDict()   # target -> (r, C)
        self.lora_B = nn.ParameterDict()   # target -> (C, r)
        for target in cfg.targets:
            a = torch.empty(cfg.rank, width, device=base.weight.device, dtype=base.weight.dtype)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as nn.Linear (and peft) start A
            self.lora_A[target] = nn.Parameter(a)
            self.lora_B[target] = nn.Parameter(torch.zeros(width, cfg.rank, device=a.device, dtype=a.dtype))
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """(3C, C): the update (α / r) · B A stacked into the target slices, zeros elsewhere."""
        rows = [self.lora_B[t] @ self.lora_A[t] if t in self.lora_A           # (C, r) @ (r, C) -> (C, C)
                else self.base.weight.new_zeros(self.width, self.width) for t in SLICES]
        return self.cfg.scaling * torch.cat(rows, dim=0)                      # (3C, C)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight (3C, C), for code that reads the matrix (cross-attention)."""
        return self.base.weight if self.merged else self.base.weight + self.delta_weight()

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)                                     # (B, T, C) -> (B, T, 3C)
        if self.merged:
            return out
        parts = list(out.split(self.width, dim=-1))            # 3 × (B, T, C): q, k, v
        for i, target in enumerate(SLICES):
            if target in self.lora_A:
                low = F.linear(x, self.lora_A[target])         # (B, T, C) -> (B, T, r)
                parts[i] = parts[i] + self.cfg.scaling * F.linear(low, self.lora_B[target])  # -> (B, T, C)
        return torch.cat(parts, dim=-1)                        # (B, T, 3C)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight: one matmul at inference, same outputs."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of the base weight again (to go on training A and B)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.cfg.rank}, alpha={self.cfg.alpha}, targets={self.cfg.targets}, merged={self.merged}"


def add_lora(model: nn.Module, cfg: LoRAConfig | None = None) -> list[LoRAQKV]:
    """Wrap the qkv projection of every ``MultiHeadAttention`` in ``model`` with LoRA, in place.

    Returns the wrappers. The base projections are frozen; nothing else changes its trainability
    (call ``adapt.freeze(model, "all")`` first to train only LoRA).
    """
    from ..modules import MultiHeadAttention

    cfg = cfg or LoRAConfig()
    attentions = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not attentions:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention to put LoRA on")
    if any(isinstance(m.qkv, LoRAQKV) for m in attentions):
        raise ValueError("this model already has LoRA; build a fresh model to start again")
    wrappers = []
    for attention in attentions:
        attention.qkv = LoRAQKV(attention.qkv, cfg)
        wrappers.append(attention.qkv)
    return wrappers


def lora_layers(model: nn.Module) -> list[LoRAQKV]:
    return [m for m in model.modules() if isinstance(m, LoRAQKV)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA update into its base weight (inference: no extra cost, same outputs)."""
    for layer in lora_layers(model):
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    for layer in lora_layers(model):
        layer.unmerge()
    return model
