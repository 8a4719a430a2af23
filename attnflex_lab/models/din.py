"""Click prediction from a user's history: target attention (DIN), mean pooling or sum pooling.

    history (B, L) item ids, candidate (B,) --embedding--> h (B, L, d), c (B, d)
    target attention (Zhou et al. 2018):  s_j = MLP([h_j, c, h_j ⊙ c, h_j − c])   (B, L)
                                          α = masked_softmax(s)  ->  u = Σ_j α_j h_j   (B, d)
    mean pooling (the baseline):          α_j = 1 / length       ->  u = mean of h_j
    sum pooling (the control):            α_j = 1                ->  u = Σ_j h_j (a history's size shows)
    logit = MLP([u, c, u ⊙ c])   (B,)

DIN's paper leaves the weights unnormalised (so the pooled vector also says how *much* history was
relevant); here they go through a softmax, so they read as "which history item", and the
poolings differ only in α. Sum pooling is the control that keeps DIN's unnormalised scale but has no
weights that depend on the candidate: it removes only the mechanism target attention is credited
with. ``forward`` returns ``(logit (B,), alpha (B, L))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..functional import masked_softmax

POOLINGS = ("target", "mean", "sum")


@dataclass
class DINConfig:
    num_items: int = 100        # ids 1..num_items; 0 is padding
    d_model: int = 16           # item embedding width
    hidden: int = 32            # width of the attention unit's and the head's hidden layer
    pooling: str = "target"     # "target" (DIN), "mean" (the baseline) or "sum" (the control)


class ClickModel(nn.Module):
    def __init__(self, cfg: DINConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DINConfig()
        if cfg.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {cfg.pooling!r}")
        d = cfg.d_model
        self.items = nn.Embedding(cfg.num_items + 1, d, padding_idx=0)
        self.attention_unit = nn.Sequential(nn.Linear(4 * d, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))
        self.head = nn.Sequential(nn.Linear(3 * d, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))

    def weights(self, h: torch.Tensor, c: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """α (B, L) over the history, zero on padding (rows sum to 1, except for sum pooling)."""
        if self.cfg.pooling == "mean":
            return mask.float() / mask.sum(1, keepdim=True).clamp(min=1)          # (B, L)
        if self.cfg.pooling == "sum":
            return mask.float()                                                   # (B, L): 1 per real item
        c = c.unsqueeze(1).expand_as(h)                                           # (B, d) -> (B, L, d)
        scores = self.attention_unit(torch.cat([h, c, h * c, h - c], -1))         # (B, L, 4d) -> (B, L, 1)
        return masked_softmax(scores.squeeze(-1), mask)                           # (B, L)

    def forward(self, history: torch.Tensor, candidate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if history.dim() != 2 or candidate.shape != history.shape[:1] or history.dtype != torch.long \
                or candidate.dtype != torch.long:
            raise ValueError(f"need history (B, L) and candidate (B,) long tensors, got "
                             f"{tuple(history.shape)} {history.dtype} and {tuple(candidate.shape)} {candidate.dtype}")
        mask = history > 0                                                        # (B, L)
        h, c = self.items(history), self.items(candidate)                         # (B, L, d), (B, d)
        alpha = self.weights(h, c, mask)                                          # (B, L)
        u = (alpha.unsqueeze(-1) * h).sum(1)                                      # (B, L, 1)*(B, L, d) -> (B, d)
        logit = self.head(torch.cat([u, c, u * c], -1)).squeeze(-1)               # (B, 3d) -> (B,)
        return logit, alpha
