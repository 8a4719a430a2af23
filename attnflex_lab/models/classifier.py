"""The classic "CNN + attention" image classifier, with shapes that fit.

    image (B, 1, 8, 8) --conv--> feature map (B, d, 4, 4) --as regions--> e (B, T=16, d)
    --attention pooling, α_t = softmax_t(e_tᵀ w_a)--> c = Σ_t α_t e_t (B, d)
    --linear--> logits (B, 10)

Attention here pools *region features*, before any classification: each of the T regions gets
one score from the learned context vector w_a ∈ R^d. (Feeding class logits (B, 10) into an
attention layer cannot work: by then there are no regions left to weigh.)
``MeanPoolingClassifier`` is the same network with α_t = 1/T, the baseline to beat.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..functional import attention_pool


@dataclass
class ClassifierConfig:
    in_channels: int = 1       # grey-scale digits
    channels: int = 32         # width of the first conv layer
    d_model: int = 64          # region feature width d
    num_classes: int = 10
    dropout: float = 0.1       # on the pooled vector, before the linear classifier
    positions: int = 16        # T regions (the 8x8 image pooled 2x2 -> 4x4)
    learned_positions: bool = True  # False: p_t = 0, fixed (lesson 03's ablation of p_t)


class RegionFeatures(nn.Module):
    """Convs, a 2×2 max-pool, then the feature map read as T regions: (B, C, H, W) -> (B, T, d).

    A learned position vector is added per region, so a region's features say *where* it is too.
    With ``learned_positions=False`` it is a zero buffer: the features then know a region's place
    only through what the convolutions' zero padding leaks (lesson 03 measures how much).
    """

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(cfg.channels, cfg.d_model, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(cfg.d_model, cfg.d_model, 3, padding=1), nn.ReLU(),
        )
        if cfg.learned_positions:
            self.position = nn.Parameter(torch.zeros(cfg.positions, cfg.d_model))      # p_t (T, d)
        else:
            self.register_buffer("position", torch.zeros(cfg.positions, cfg.d_model))  # p_t = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
        fmap = self.convs(images)                         # (B, C, 8, 8) -> (B, d, 4, 4)
        regions = fmap.flatten(2).transpose(1, 2)         # (B, d, 4, 4) -> (B, d, 16) -> (B, T, d)
        if regions.shape[1] != self.position.shape[0]:
            raise ValueError(f"the images give {regions.shape[1]} regions but the model was built "
                             f"for {self.position.shape[0]} (8x8 inputs give 16)")
        return regions + self.position                     # (B, T, d) + (T, d) -> (B, T, d)


class AttentionPoolingClassifier(nn.Module):
    """Region features → attention pooling with a learned context vector → class logits.

    ``forward(images)`` returns ``(logits (B, classes), alpha (B, T))``; α sums to 1 over regions.
    """

    def __init__(self, cfg: ClassifierConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ClassifierConfig()
        self.features = RegionFeatures(cfg)
        self.w_a = nn.Parameter(torch.randn(cfg.d_model) / cfg.d_model**0.5)  # context vector (d,)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, cfg.num_classes)

    def pool(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return attention_pool(e, self.w_a)                # (B, T, d), (d,) -> (B, d), (B, T)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.features(images)                         # (B, T, d)
        context, alpha = self.pool(e)                     # (B, d), (B, T)
        logits = self.head(self.dropout(context))         # (B, d) -> (B, classes)
        return logits, alpha


class MeanPoolingClassifier(AttentionPoolingClassifier):
    """The same network with uniform weights α_t = 1/T: d parameters (w_a) fewer, nothing else."""

    def __init__(self, cfg: ClassifierConfig | None = None):
        super().__init__(cfg)
        del self.w_a  # no context vector: every region counts the same

    def pool(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = torch.full(e.shape[:2], 1.0 / e.shape[1], dtype=e.dtype, device=e.device)  # (B, T)
        return e.mean(dim=1), alpha                       # (B, T, d) -> (B, d)


def region_grid(alpha: torch.Tensor) -> torch.Tensor:
    """Attention over T regions as a √T × √T grid: (..., T) -> (..., h, w), for overlays."""
    side = round(alpha.shape[-1] ** 0.5)
    if side * side != alpha.shape[-1]:
        raise ValueError(f"alpha has {alpha.shape[-1]} regions, not a square number")
    return alpha.reshape(*alpha.shape[:-1], side, side)   # (..., T) -> (..., h, w)


def constant_image_features(features: RegionFeatures, value: float = 0.5) -> torch.Tensor:
    """Region features (T, d) of one image whose pixels all equal ``value``.

    Such an image looks the same from every region, so with p_t = 0 any difference between the
    T features comes from the border: the convolutions' zero padding is where position leaks in.
    """
    cfg_channels = features.convs[0].in_channels
    side = 2 * round(features.position.shape[0] ** 0.5)            # 2×2 pooling: T = (side / 2)²
    image = torch.full((1, cfg_channels, side, side), value,
                       device=features.position.device)             # (1, C, side, side)
    with torch.no_grad():
        return features(image)[0]                                  # (1, T, d) -> (T, d)


def with_circular_padding(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose convolutions wrap around the image instead of padding with 0.

    On a constant image a circular convolution sees the same pixels everywhere, so it is the
    control for ``constant_image_features``: no border, no position.
    """
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, nn.Conv2d):
            module.padding_mode = "circular"
    return twin
