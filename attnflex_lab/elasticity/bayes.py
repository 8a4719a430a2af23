"""The Bayes-optimal observer for in-context WCST: an exact forward filter over the three rules.

Before trial t the observer holds a prior π_t(r) over the hidden rule (π_0 uniform). It predicts the
answer by summing over rules — a card can match the same answer under several rules, so

    P(a_t = v | card_t) = Σ_r π_t(r) · 1[card_t[r] = v].

After the feedback a_t it conditions (every rule under which the card's feature equals a_t stays):

    post_t(r) ∝ π_t(r) · 1[card_t[r] = a_t],

and the hidden rule may switch, with hazard h, to either other rule:

    π_{t+1}(r) = (1 − h) · post_t(r) + (h / 2) · (1 − post_t(r)).

No observer that sees only the stream can do better on average: this is the ceiling for every
in-context learner. ``brute_force_predictive`` checks it by enumerating every rule sequence.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .tasks import N_FEATURES, N_VALUES


@dataclass
class ObserverResult:
    """B streams, T trials."""

    prior: torch.Tensor       # (B, T, 3): π_t, belief over rules before trial t's feedback
    predictive: torch.Tensor  # (B, T, 4): P(a_t = v | cards, answers before t)
    correct: torch.Tensor     # (B, T): expected accuracy of the argmax guess (ties split evenly)


def check_stream(cards: torch.Tensor, answers: torch.Tensor, hazard: float) -> None:
    if cards.dim() != 3 or cards.shape[-1] != N_FEATURES:
        raise ValueError(f"cards must have shape (B, T, {N_FEATURES}), got {tuple(cards.shape)}")
    if answers.shape != cards.shape[:2]:
        raise ValueError(f"answers must have shape {tuple(cards.shape[:2])} (B, T), got {tuple(answers.shape)}")
    if not 0.0 <= hazard <= 1.0:
        raise ValueError(f"hazard is a probability per trial, got {hazard!r}")


def bayes_observer(cards: torch.Tensor, answers: torch.Tensor, hazard: float) -> ObserverResult:
    """Exact filtering (float64) over the rules for streams ``cards (B, T, 3)``, ``answers (B, T)``."""
    check_stream(cards, answers, hazard)
    B, T, _ = cards.shape
    match_value = torch.nn.functional.one_hot(cards.long(), N_VALUES).double()   # (B, T, 3, 4)
    pi = torch.full((B, N_FEATURES), 1.0 / N_FEATURES, dtype=torch.float64)     # (B, 3)
    priors, preds = [], []
    for t in range(T):
        priors.append(pi)
        pred = torch.einsum("br,brv->bv", pi, match_value[:, t])                 # (B, 3),(B, 3, 4) -> (B, 4)
        preds.append(pred)
        like = (cards[:, t] == answers[:, t, None]).double()                     # (B, 3): 1 if rule fits
        pi = switch_prior(condition(pi, like), hazard)                           # (B, 3)
    return observer_result(priors, preds, answers)


def condition(pi: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """post(r) ∝ π(r) · like(r), rows (B, 3). Feedback no rule explains (z = 0) cannot happen in a
    stream drawn from the task; the prior is kept then."""
    post = pi * like                                                             # (B, 3)
    z = post.sum(-1, keepdim=True)                                               # (B, 1)
    return torch.where(z > 0, post / z.clamp_min(1e-300), pi)


def switch_prior(post: torch.Tensor, hazard) -> torch.Tensor:
    """π' = (1 − h) · post + (h / 2) · (1 − post): a switch, with probability h, to either other rule.
    ``hazard``: a float, or a (B, 1) tensor (1 where a switch is certain, 0 where none can happen)."""
    return (1 - hazard) * post + (hazard / 2) * (1 - post)


def observer_result(priors: list, preds: list, answers: torch.Tensor) -> ObserverResult:
    """Stack per-trial beliefs and predictions; score the argmax guess against ``answers`` (ties split)."""
    prior = torch.stack(priors, 1)                                               # (B, T, 3)
    predictive = torch.stack(preds, 1)                                           # (B, T, 4)
    best = predictive >= predictive.amax(-1, keepdim=True) - 1e-12               # (B, T, 4) argmax set
    hit = best.gather(-1, answers.long().unsqueeze(-1)).squeeze(-1).double()     # (B, T)
    correct = hit / best.sum(-1).double()                                        # ties split evenly
    return ObserverResult(prior, predictive, correct)


def brute_force_predictive(cards: torch.Tensor, answers: torch.Tensor, hazard: float) -> torch.Tensor:
    """P(a_t = v | history) by enumerating all 3^T rule sequences of one stream (T ≤ 8).

    ``cards (T, 3)``, ``answers (T,)`` -> ``(T, 4)``. The reference the filter is tested against.
    """
    T = cards.shape[0]
    if T > 8:
        raise ValueError(f"brute force enumerates 3^T sequences; keep T <= 8, got T={T}")
    out = torch.zeros(T, N_VALUES, dtype=torch.float64)
    for t in range(T):
        joint = torch.zeros(N_VALUES, dtype=torch.float64)
        for seq in itertools.product(range(N_FEATURES), repeat=t + 1):
            p = 1.0 / N_FEATURES
            for prev, cur in zip(seq, seq[1:], strict=False):
                p *= (1 - hazard) if cur == prev else hazard / 2
            for s in range(t):  # the feedback seen before trial t
                p *= float(int(cards[s, seq[s]]) == int(answers[s]))
            joint[int(cards[t, seq[t]])] += p
        out[t] = joint / joint.sum()
    return out
