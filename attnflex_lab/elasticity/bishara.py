"""A hand-written attention baseline for in-context WCST, after the attentional-updating model of
card sorting (Bishara et al. 2010), adapted to full feedback (the correct answer is shown).

Attention a_t is a distribution over the three feature dimensions, a_0 uniform. The guess for card_t
weighs each answer by the attention on the dimensions that would give it,

    score_t(v) = Σ_r a_t(r) · 1[card_t[r] = v],

and after the feedback a_t the attention moves a step λ towards the dimensions consistent with it,
sharpened by the focus f (f = 0: all consistent dimensions alike; f = 1: in proportion to a_t):

    s_t(r) ∝ 1[card_t[r] = a_t] · a_t(r)^f,        a_{t+1} = (1 − λ) a_t + λ s_t.

With λ = 1 and f = 1 it is exact Bayesian conditioning with no switches (hazard 0); a λ < 1 keeps
some attention on every dimension, which is what lets it shift after a switch.
"""

from __future__ import annotations

import torch

from .bayes import check_stream
from .tasks import N_FEATURES, N_VALUES


def attentional_updating(cards: torch.Tensor, answers: torch.Tensor, rate: float, focus: float = 1.0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """cards (B, T, 3), answers (B, T) -> (attention before each trial (B, T, 3), expected accuracy (B, T)).

    Accuracy is that of the argmax guess, ties split evenly (as for the Bayes observer).
    """
    check_stream(cards, answers, 0.0)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate (λ) must be in (0, 1], got {rate!r}")
    if focus < 0:
        raise ValueError(f"focus (f) must be >= 0, got {focus!r}")
    B, T, _ = cards.shape
    match_value = torch.nn.functional.one_hot(cards.long(), N_VALUES).double()   # (B, T, 3, 4)
    a = torch.full((B, N_FEATURES), 1.0 / N_FEATURES, dtype=torch.float64)      # (B, 3)
    attn, correct = [], []
    for t in range(T):
        attn.append(a)
        score = torch.einsum("br,brv->bv", a, match_value[:, t])                 # (B, 4)
        best = score >= score.amax(-1, keepdim=True) - 1e-12                     # (B, 4) argmax set
        hit = best.gather(-1, answers[:, t, None].long()).squeeze(-1).double()   # (B,)
        correct.append(hit / best.sum(-1))
        consistent = (cards[:, t] == answers[:, t, None]).double()               # (B, 3)
        s = consistent * a.pow(focus)                                            # (B, 3)
        z = s.sum(-1, keepdim=True)
        # attention all on inconsistent dimensions (possible after a switch when f > 0): fall back to f = 0
        s = torch.where(z > 0, s / z.clamp_min(1e-300), consistent / consistent.sum(-1, keepdim=True))
        a = (1 - rate) * a + rate * s                                            # (B, 3)
    return torch.stack(attn, 1), torch.stack(correct, 1)


def fit_attentional_updating(cards: torch.Tensor, answers: torch.Tensor,
                             rates=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                             focuses=(0.0, 1.0, 2.0)) -> tuple[float, float, float]:
    """Grid search for the (λ, f) with the best mean accuracy on these streams: (rate, focus, accuracy)."""
    best = max((float(attentional_updating(cards, answers, r, f)[1].mean()), r, f)
                for r in rates for f in focuses)
    return best[1], best[2], best[0]
