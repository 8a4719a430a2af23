"""A synthetic click-prediction task whose relevant history item is known (for target attention).

No public recommendation data set installs as a package with its data inside, so this one is made
by code, and says so: items come in hidden *pairs* (a film and its sequel, a phone and its case).
A user clicks a candidate item when its partner is in the user's history. A positive example has
exactly one such history item, at a known position (``relevant``); a negative has none.

Mean pooling of the history dilutes that one item among up to ``max_history`` others; target
attention (DIN, Zhou et al. 2018) can weigh the history *by the candidate* and pick it out. Because
the relevant position is known, one can measure whether the attention really picks it.

Item ids run from 1 to ``num_items``; 0 is padding (histories have different lengths).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RecsysConfig:
    num_items: int = 100        # even: items are paired
    max_history: int = 20       # L; histories hold min_history..L items
    min_history: int = 5
    positive_rate: float = 0.5


@dataclass
class Clicks:
    history: torch.Tensor       # (N, L) long, item ids, 0 = padding (at the end)
    candidate: torch.Tensor     # (N,) long
    label: torch.Tensor         # (N,) float32, 1 = clicked
    relevant: torch.Tensor      # (N,) long, position of the candidate's partner in history, -1 if none

    def __len__(self) -> int:
        return len(self.label)

    @property
    def mask(self) -> torch.Tensor:
        return self.history > 0                                    # (N, L), True = a real item

    def subset(self, index) -> Clicks:
        return Clicks(self.history[index], self.candidate[index], self.label[index], self.relevant[index])


def partners(num_items: int, seed: int = 0) -> torch.Tensor:
    """partner[i] for i in 0..num_items (entry 0, padding, is 0): a seeded random pairing of 1..N."""
    if num_items < 4 or num_items % 2:
        raise ValueError(f"num_items must be even and at least 4, got {num_items}")
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed)) + 1  # (N,)
    partner = torch.zeros(num_items + 1, dtype=torch.long)
    a, b = order[0::2], order[1::2]
    partner[a], partner[b] = b, a
    return partner


def make_clicks(n: int, cfg: RecsysConfig | None = None, seed: int = 0) -> Clicks:
    """``n`` examples drawn from ``seed`` (the pairing is fixed by the config alone, seed 0)."""
    cfg = cfg or RecsysConfig()
    if not 1 <= cfg.min_history <= cfg.max_history or 2 * cfg.max_history + 2 > cfg.num_items:
        raise ValueError(f"need 1 <= min_history <= max_history and 2·max_history + 2 <= num_items, got {cfg}")
    partner = partners(cfg.num_items)
    gen = torch.Generator().manual_seed(seed)
    history = torch.zeros(n, cfg.max_history, dtype=torch.long)
    candidate = torch.zeros(n, dtype=torch.long)
    relevant = torch.full((n,), -1, dtype=torch.long)
    label = (torch.rand(n, generator=gen) < cfg.positive_rate).float()
    for row in range(n):
        length = int(torch.randint(cfg.min_history, cfg.max_history + 1, (1,), generator=gen))
        # Draw items whose partners are not drawn too, so "the partner is in the history" has one answer.
        items = _unpaired_items(cfg.num_items, length + 1, partner, gen)  # (length + 1,)
        seen = items[:length]
        history[row, :length] = seen
        if label[row] == 1:
            pos = int(torch.randint(length, (1,), generator=gen))
            candidate[row], relevant[row] = partner[seen[pos]], pos
        else:
            candidate[row] = items[length]                       # neither it nor its partner was seen
    return Clicks(history, candidate, label, relevant)


def _unpaired_items(num_items: int, k: int, partner: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """k distinct items, no two of them partners: one item from each of k distinct random pairs."""
    pair_heads = torch.nonzero(torch.arange(num_items + 1) < partner).squeeze(1)   # (N/2,) smaller of each pair
    chosen = pair_heads[torch.randperm(len(pair_heads), generator=gen)[:k]]        # (k,)
    flip = torch.rand(k, generator=gen) < 0.5
    return torch.where(flip, partner[chosen], chosen)


def split_clicks(data: Clicks, val_fraction: float = 0.1, test_fraction: float = 0.2
                 ) -> tuple[Clicks, Clicks, Clicks]:
    """Train / val / test by position (the examples are already independent draws)."""
    n = len(data)
    n_test, n_val = int(n * test_fraction), int(n * val_fraction)
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} examples leave no training set")
    cut = n - n_test - n_val
    return data.subset(slice(0, cut)), data.subset(slice(cut, cut + n_val)), data.subset(slice(cut + n_val, n))


def top1_hit_rate(weights: torch.Tensor, data: Clicks) -> float:
    """Over positive examples: how often the largest attention weight is on the relevant item."""
    if weights.shape != data.history.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must match history {tuple(data.history.shape)}")
    positive = data.relevant >= 0
    if not positive.any():
        raise ValueError("no positive examples: the relevant item is only defined for clicks")
    picked = weights[positive].argmax(dim=1)                     # (P,)
    return float((picked == data.relevant[positive]).float().mean())
