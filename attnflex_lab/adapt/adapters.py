"""Bottleneck adapters (Houlsby et al. 2019) after the attention and MLP sublayers of each block.

An adapter is a small residual MLP, h -> h + W_up · act(W_down · h), with W_down (m, C) and
W_up (C, m), m ≪ C. W_up starts at zero, so every adapter starts as the identity and the adapted
model starts as the base model. Houlsby et al. put one after each sublayer's output projection,
before the residual add: ``Adapted`` wraps the sublayer (``block.attn`` or ``block.mlp``) and
applies its adapter to whatever the sublayer returns, so the sublayer itself is not copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SUBLAYERS = ("attn", "mlp")


@dataclass
class AdapterConfig:
    size: int = 8                          # m: bottleneck width
    where: tuple[str, ...] = ("attn", "mlp")  # which sublayers of each block get an adapter

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size <= 0:
            raise ValueError(f"adapter size must be a positive int, got {self.size!r}")
        self.where = (self.where,) if isinstance(self.where, str) else tuple(self.where)
        bad = [w for w in self.where if w not in SUBLAYERS]
        if bad or not self.where or len(set(self.where)) != len(self.where):
            raise ValueError(f"adapter 'where' must be distinct names from {SUBLAYERS}, got {self.where!r}")


class Bottleneck(nn.Module):
    """h (..., C) -> h + up(gelu(down(h))); the identity at initialisation (up = 0)."""

    def __init__(self, width: int, size: int):
        super().__init__()
        if size > width:
            raise ValueError(f"adapter size {size} exceeds the model width {width}: a bottleneck "
                             f"must be narrower than what it adapts")
        self.down = nn.Linear(width, size)   # C -> m
        self.up = nn.Linear(size, width)     # m -> C
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(F.gelu(self.down(h)))  # (..., C) -> (..., m) -> (..., C)


class Adapted(nn.Module):
    """A sublayer followed by an adapter: ``adapter(sublayer(*args, **kwargs))``."""

    def __init__(self, sublayer: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.sublayer, self.adapter = sublayer, adapter

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.adapter(self.sublayer(*args, **kwargs))  # (B, T, C)


def add_adapters(model: nn.Module, cfg: AdapterConfig | None = None) -> list[Bottleneck]:
    """Wrap ``attn`` and/or ``mlp`` of every ``TransformerBlock`` in ``model`` with an adapter, in
    place. Returns the adapters (trainable; freeze the rest with ``adapt.freeze`` first)."""
    from ..modules import TransformerBlock

    cfg = cfg or AdapterConfig()
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no TransformerBlock to put adapters in")
    adapters = []
    for block in blocks:
        width = block.ln1.normalized_shape[0]
        for name in cfg.where:
            sublayer = getattr(block, name)
            if isinstance(sublayer, Adapted):
                raise ValueError(f"block.{name} already has an adapter; build a fresh model to start again")
            param = next(sublayer.parameters())
            adapter = Bottleneck(width, cfg.size).to(device=param.device, dtype=param.dtype)
            setattr(block, name, Adapted(sublayer, adapter))
            adapters.append(adapter)
    return adapters
