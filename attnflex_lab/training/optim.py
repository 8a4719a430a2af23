"""The optimizer for ``fit()``: AdamW with minGPT's decay / no-decay parameter groups.

Weight decay pulls weights towards zero. That regularises the matrices of linear layers, but on a
bias, a LayerNorm gain or an embedding row it only fights the signal: a norm's gain is meant to sit
near 1, and a rare token's embedding would shrink merely because the token is rare. So, as in
minGPT's ``configure_optimizers``, only parameters with two or more dimensions that are not
embedding tables decay (today's nanoGPT decays every parameter with two or more dimensions,
embeddings included).
"""

from __future__ import annotations

import torch
from torch import nn

from ..modules import LearnedPositionalEncoding
from .config import TrainConfig


def embedding_parameters(model: nn.Module) -> set[int]:
    """ids of embedding tables: ``nn.Embedding`` weights and learned positional tables.

    A tied output layer shares its weight with the token embedding, so it counts as one too."""
    found = set()
    for module in model.modules():
        if isinstance(module, (nn.Embedding, LearnedPositionalEncoding)):
            found.update(id(p) for p in module.parameters(recurse=False))
    return found


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[decayed, not decayed]: matrices decay; biases, norms and embeddings (dim < 2 or tables) do not."""
    tables = embedding_parameters(model)
    decay, no_decay = [], []
    for param in model.parameters():  # each shared (tied) parameter once
        (decay if param.dim() >= 2 and id(param) not in tables else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def use_fused(model: nn.Module, device: torch.device) -> bool:
    """Fused AdamW (one kernel for all parameters) needs every parameter on CUDA in a float dtype."""
    params = list(model.parameters())
    return device.type == "cuda" and bool(params) and all(
        p.is_cuda and p.is_floating_point() for p in params)


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    fused = use_fused(model, device)
    return torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr,
                             fused=True if fused else None)
