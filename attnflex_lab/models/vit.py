"""A small Vision Transformer (Dosovitskiy et al. 2021) for the 8×8 handwritten digits.

Dimension legend: B batch, P patches, C model width. An 8×8 image cut into 2×2 patches gives a 4×4
grid of P = 16 patches; a learned [CLS] token is prepended, so the blocks see N = P + 1 tokens, and
the class is read from the [CLS] position. Its attention to the 16 patches can be laid back over
the image (``attnflex_lab.viz.rollout``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._validate import check_floating
from ..modules import LearnedPositionalEncoding, TransformerBlock
from .transformer import init_gpt2


@dataclass
class ViTConfig:
    image_size: int = 8           # digits are 8×8
    patch_size: int = 2           # 2×2 patches -> a 4×4 grid of 16 tokens
    channels: int = 1             # grey scale
    n_classes: int = 10           # digits 0-9
    d_model: int = 64             # C: token width
    n_heads: int = 4              # H: heads per layer
    n_layers: int = 2             # L: transformer blocks
    dropout: float = 0.1          # 1,797 images overfit quickly without it
    backend: str = "sdpa"         # attention backend: "sdpa", "functional" or "ops"

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid**2


class PatchEmbedding(nn.Module):
    """Cut (B, ch, H, W) into p×p patches and project each to C: a conv with stride = kernel = p."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size={cfg.image_size} must be a multiple of patch_size={cfg.patch_size}")
        self.cfg = cfg
        self.proj = nn.Conv2d(cfg.channels, cfg.d_model, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_floating(images=images)
        c = self.cfg
        expected = (c.channels, c.image_size, c.image_size)
        if images.dim() == 3 and c.channels == 1:
            images = images.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must have shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(images.shape)}")
        x = self.proj(images)                  # (B, ch, H, W) -> (B, C, g, g)
        return x.flatten(2).transpose(1, 2)    # (B, C, g·g) -> (B, P, C), patches in row-major order


class TinyViT(nn.Module):
    """Patch embedding + [CLS] + learned positions + pre-LN blocks -> class logits (B, n_classes)."""

    def __init__(self, cfg: ViTConfig | None = None):
        super().__init__()
        cfg = cfg or ViTConfig()
        self.cfg = cfg
        self.patches = PatchEmbedding(cfg)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))          # (1, 1, C)
        self.pos = LearnedPositionalEncoding(cfg.d_model, cfg.n_patches + 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.d_model, cfg.n_heads, dropout=cfg.dropout,
                                                     backend=cfg.backend) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)
        init_gpt2(self, self.blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patches(images)                                   # (B, P, C)
        cls = self.cls.expand(x.shape[0], -1, -1)                  # (B, 1, C)
        x = self.drop(self.pos(torch.cat([cls, x], dim=1)))        # (B, 1 + P, C)
        for block in self.blocks:
            x = block(x)                                           # (B, 1 + P, C)
        return self.head(self.ln_f(x[:, 0]))                       # [CLS] (B, C) -> (B, n_classes)
