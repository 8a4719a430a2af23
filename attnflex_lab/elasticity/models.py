"""Setting A models: pick one of K candidate cards for a query card (logits over the K candidates).

Cards enter as one-hot features, (…, 3) -> (…, 12). ``cued`` models also get the rule as a one-hot
(B, 3). Every model returns ``(logits (B, K), weights (B, K))``; for the attention pointers the
weights are the attention over the candidates (and also the output distribution), for the baselines
they are the output distribution softmax(logits), which is what ``attention_shift`` then compares.

- ``Pointer``: a query-conditioned scaled dot-product score s_k = q·k_k / √d, q = MLP(query[, rule]),
  k_k = W card_k, optionally times a learned inverse temperature β = exp(log β).
- ``MLPChooser``: an MLP over the concatenated query and candidates (no attention).
- ``SharedScorer``: one MLP scores each (query, candidate) pair alone, s_k = MLP([query, card_k]): the
  pointer's weight sharing across candidates without its dot product (the control for crediting attention).
- ``GRUChooser``: a GRU reads the query and then the candidates; candidate k's score is read from the
  hidden state after it (no attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .tasks import N_FEATURES, N_VALUES

CARD_WIDTH = N_FEATURES * N_VALUES   # 12: one-hot colour | shape | number
FAMILIES = ("pointer", "pointer_temp", "pointer_entropy", "pointer_reset", "pointer_cued", "pointer_cued_replay",
            "mlp", "gru", "shared_mlp")


@dataclass
class ChooserConfig:
    k: int = 4                 # K: candidates per example
    d: int = 32                # query/key width of the pointer
    hidden: int = 64           # hidden width of the query MLP, the MLP baseline and the GRU
    cued: bool = False         # the rule is part of the input (cued task switching)
    learned_temperature: bool = False  # pointer only: scores times a learned β


def one_hot_cards(cards: torch.Tensor) -> torch.Tensor:
    """(…, 3) long -> (…, 12) float."""
    return F.one_hot(cards, N_VALUES).float().flatten(-2)   # (…, 3, 4) -> (…, 12)


def _rule_input(rule: torch.Tensor | None, cued: bool, batch: int) -> torch.Tensor | None:
    if not cued:
        return None
    if rule is None or rule.shape != (batch,):
        raise ValueError(f"a cued model needs rule of shape ({batch},), got "
                         f"{None if rule is None else tuple(rule.shape)}")
    return F.one_hot(rule, N_FEATURES).float()              # (B, 3)


def _check_cards(query: torch.Tensor, cands: torch.Tensor, k: int) -> None:
    if query.dim() != 2 or query.shape[-1] != N_FEATURES:
        raise ValueError(f"query must be (B, {N_FEATURES}) card features, got {tuple(query.shape)}")
    if cands.shape != (query.shape[0], k, N_FEATURES):
        raise ValueError(f"candidates must be (B={query.shape[0]}, K={k}, {N_FEATURES}), got {tuple(cands.shape)}")


class Pointer(nn.Module):
    def __init__(self, cfg: ChooserConfig):
        super().__init__()
        self.cfg = cfg
        q_in = CARD_WIDTH + (N_FEATURES if cfg.cued else 0)
        self.query = nn.Sequential(nn.Linear(q_in, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.d))
        self.key = nn.Linear(CARD_WIDTH, cfg.d, bias=False)
        self.log_beta = nn.Parameter(torch.zeros(())) if cfg.learned_temperature else None

    def forward(self, query, cands, rule=None):
        _check_cards(query, cands, self.cfg.k)
        x = one_hot_cards(query)                                    # (B, 12)
        r = _rule_input(rule, self.cfg.cued, x.shape[0])
        if r is not None:
            x = torch.cat([x, r], -1)                               # (B, 15)
        q = self.query(x)                                           # (B, d)
        k = self.key(one_hot_cards(cands))                          # (B, K, 12) -> (B, K, d)
        scores = (k @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(self.cfg.d)  # (B, K, d) @ (B, d, 1) -> (B, K)
        if self.log_beta is not None:
            scores = scores * self.log_beta.exp()
        return scores, scores.softmax(-1)                           # (B, K), attention over candidates


class MLPChooser(nn.Module):
    def __init__(self, cfg: ChooserConfig):
        super().__init__()
        self.cfg = cfg
        width = CARD_WIDTH * (cfg.k + 1) + (N_FEATURES if cfg.cued else 0)
        self.net = nn.Sequential(nn.Linear(width, 2 * cfg.hidden), nn.ReLU(),
                                 nn.Linear(2 * cfg.hidden, 2 * cfg.hidden), nn.ReLU(),
                                 nn.Linear(2 * cfg.hidden, cfg.k))

    def forward(self, query, cands, rule=None):
        _check_cards(query, cands, self.cfg.k)
        x = torch.cat([one_hot_cards(query), one_hot_cards(cands).flatten(1)], -1)  # (B, 12 (K+1))
        r = _rule_input(rule, self.cfg.cued, x.shape[0])
        if r is not None:
            x = torch.cat([x, r], -1)
        logits = self.net(x)                                        # (B, K)
        return logits, logits.softmax(-1)


class SharedScorer(nn.Module):
    def __init__(self, cfg: ChooserConfig):
        super().__init__()
        self.cfg = cfg
        width = 2 * CARD_WIDTH + (N_FEATURES if cfg.cued else 0)
        self.net = nn.Sequential(nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))

    def forward(self, query, cands, rule=None):
        _check_cards(query, cands, self.cfg.k)
        q = one_hot_cards(query).unsqueeze(1).expand(-1, self.cfg.k, -1)            # (B, K, 12)
        x = torch.cat([q, one_hot_cards(cands)], -1)                                 # (B, K, 24)
        r = _rule_input(rule, self.cfg.cued, x.shape[0])
        if r is not None:
            x = torch.cat([x, r.unsqueeze(1).expand(-1, self.cfg.k, -1)], -1)       # (B, K, 27)
        logits = self.net(x).squeeze(-1)                                             # (B, K)
        return logits, logits.softmax(-1)


class GRUChooser(nn.Module):
    def __init__(self, cfg: ChooserConfig):
        super().__init__()
        self.cfg = cfg
        width = CARD_WIDTH + (N_FEATURES if cfg.cued else 0)
        self.gru = nn.GRU(width, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, 1)

    def forward(self, query, cands, rule=None):
        _check_cards(query, cands, self.cfg.k)
        seq = torch.cat([one_hot_cards(query).unsqueeze(1), one_hot_cards(cands)], 1)  # (B, K+1, 12)
        r = _rule_input(rule, self.cfg.cued, seq.shape[0])
        if r is not None:
            seq = torch.cat([seq, r.unsqueeze(1).expand(-1, seq.shape[1], -1)], -1)     # (B, K+1, 15)
        h, _ = self.gru(seq)                                        # (B, K+1, hidden)
        logits = self.out(h[:, 1:]).squeeze(-1)                     # (B, K, hidden) -> (B, K)
        return logits, logits.softmax(-1)


def build_model(family: str, k: int = 4, **overrides) -> nn.Module:
    """The model for a family name (see ``FAMILIES``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    cfg = ChooserConfig(k=k, cued=family.startswith("pointer_cued"), learned_temperature=family == "pointer_temp",
                        **overrides)
    if family == "mlp":
        return MLPChooser(cfg)
    if family == "gru":
        return GRUChooser(cfg)
    if family == "shared_mlp":
        return SharedScorer(cfg)
    return Pointer(cfg)
