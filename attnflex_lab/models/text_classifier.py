"""A bag of word embeddings pooled by attention (or by the mean), then a linear classifier.

    ids (B, T) --embedding--> e (B, T, d) --pool--> c (B, d) --linear--> logits (B, classes)
    attention pooling: α_t = masked_softmax_t(e_tᵀ w_a), c = Σ_t α_t e_t   (lesson 01's pooling)
    mean pooling:      α_t = 1 / length

No word order and no context: a word's weight depends on the word alone (and on the others only
through the softmax), so α reads as "which words this model listens to". ``forward`` returns
``(logits (B, classes), alpha (B, T))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..functional import attention_pool
from .transformer import range_check_is_cheap

POOLINGS = ("attention", "mean")


@dataclass
class TextClassifierConfig:
    vocab_size: int = 1000      # ids 0..vocab_size-1; 0 is padding
    d_model: int = 32           # word embedding width
    num_classes: int = 2
    dropout: float = 0.2        # on the pooled vector
    pooling: str = "attention"  # "attention" or "mean"


class PooledTextClassifier(nn.Module):
    def __init__(self, cfg: TextClassifierConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or TextClassifierConfig()
        if cfg.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {cfg.pooling!r}")
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=0)
        self.w_a = nn.Parameter(torch.randn(cfg.d_model) / cfg.d_model**0.5)   # context vector (d,)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, cfg.num_classes)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids must be a (B, T) long tensor, got {tuple(ids.shape)} {ids.dtype}")
        # Reading max() back waits for the device: only where that is free (CPU) or rare (inference);
        # a training step on a GPU would pay a host sync per forward (the embedding still faults).
        if range_check_is_cheap(ids, self.training) and ids.numel() and int(ids.max()) >= self.cfg.vocab_size:
            raise ValueError(f"ids reach {int(ids.max())} but the vocabulary has {self.cfg.vocab_size} words")
        mask = ids > 0                                                      # (B, T)
        e = self.embedding(ids)                                             # (B, T, d)
        if self.cfg.pooling == "attention":
            context, alpha = attention_pool(e, self.w_a, mask)              # (B, d), (B, T)
        else:
            alpha = mask.float() / mask.sum(1, keepdim=True).clamp(min=1)   # (B, T)
            context = (alpha.unsqueeze(-1) * e).sum(1)                      # (B, d)
        return self.head(self.dropout(context)), alpha                     # (B, classes), (B, T)
