"""Lesson 11 exercises: target attention over a user's history (DIN-style), its gradient with
respect to the candidate (a derivation: autograd is off in its check), and MASE.

Inputs are float64; histories have padding (False in the mask) at different places per row, and
one row is padded down to a single item, so a forgotten mask or a softmax over the wrong axis shows.
The package answers both already (``functional.attention`` with the candidate as the one query;
``tasks.timeseries.mase``, which the lesson imports to load its data): the checks switch those off.
"""

import torch

from . import Exercise, register

_F64 = torch.float64

# --- 11.target_attention ------------------------------------------------------------------------


def target_attention(history: torch.Tensor, candidate: torch.Tensor, mask: torch.Tensor):
    """α_j = softmax_j(h_j · c / √d) over the real items only; u = Σ_j α_j h_j. Returns (u, α)."""
    d = history.shape[-1]
    scores = (history @ candidate.unsqueeze(-1)).squeeze(-1) / d**0.5    # (B, L, d) @ (B, d, 1) -> (B, L)
    scores = scores.masked_fill(~mask, float("-inf"))                     # padding can never win
    alpha = torch.softmax(scores, dim=-1)                                 # (B, L), over the history
    return (alpha.unsqueeze(-1) * history).sum(1), alpha                  # (B, d), (B, L)


def _history_inputs(gen: torch.Generator):
    B, L, d = 4, 6, 5
    history = torch.randn(B, L, d, generator=gen, dtype=_F64)            # (B, L, d)
    candidate = torch.randn(B, d, generator=gen, dtype=_F64)             # (B, d)
    lengths = torch.tensor([6, 4, 1, 3])                                  # row 2: one real item
    mask = torch.arange(L) < lengths.unsqueeze(1)                         # (B, L)
    history[~mask] = 5.0                                                  # loud padding: it must not count
    return history, candidate, mask


register(Exercise(
    id="11.target_attention",
    prompt="Write target_attention(history, candidate, mask) -> (u, alpha): score each history item "
           "h_j (B, L, d) against the candidate c (B, d) with h_j·c/√d, softmax over the real items "
           "(mask True), and pool u = Σ_j α_j h_j.",
    solution=target_attention,
    make_inputs=_history_inputs,
    hint="the scores are one number per history item, (B, L); fill the padded ones with -inf before "
         "the softmax (not after: the others would not sum to 1), take the softmax over L (dim=-1), "
         "and divide by √d, d being the item width.",
    hints=("one score per history item: a batched dot product of each h_j with c gives (B, L).",
           "padding must get zero weight and the real items must still sum to 1: mask the scores, "
           "not the weights.",
           "scores = (history @ candidate[..., None]).squeeze(-1) / √d; masked_fill(~mask, -inf); "
           "softmax over dim=-1; u = (α[..., None] * history).sum(1)."),
    guards=("attnflex_lab.functional:attention", "attnflex_lab.functional:masked_softmax"),
    atol=1e-10, rtol=1e-8,
))

# --- 11.candidate_gradient: derive it ------------------------------------------------------------


def candidate_gradient(history: torch.Tensor, candidate: torch.Tensor, mask: torch.Tensor,
                       grad_u: torch.Tensor) -> torch.Tensor:
    """∂ℒ/∂c for u = Σ_j α_j h_j, α = softmax_j(h_j·c/√d) over the real items, given g = ∂ℒ/∂u:
    ∂ℒ/∂α_j = g·h_j, the softmax backward ∂ℒ/∂s_j = α_j (g·h_j − Σ_k α_k g·h_k), and s_j = h_j·c/√d,
    so ∂ℒ/∂c = Σ_j ∂ℒ/∂s_j h_j / √d. (The history enters u directly too; c only through α.)"""
    d = history.shape[-1]
    _, alpha = target_attention(history, candidate, mask)                     # (B, L)
    g_dot_h = (history @ grad_u.unsqueeze(-1)).squeeze(-1)                    # (B, L, d) @ (B, d, 1) -> (B, L)
    grad_s = alpha * (g_dot_h - (alpha * g_dot_h).sum(-1, keepdim=True))     # (B, L); padding: α = 0 -> 0
    return (grad_s.unsqueeze(-1) * history).sum(1) / d**0.5                  # (B, L, 1)*(B, L, d) -> (B, d)


def _gradient_inputs(gen: torch.Generator):
    history, candidate, mask = _history_inputs(gen)
    return history, candidate, mask, torch.randn(candidate.shape, generator=gen, dtype=_F64)  # random g


register(Exercise(
    id="11.candidate_gradient",
    prompt="Derive and write candidate_gradient(history, candidate, mask, grad_u) -> (B, d): the gradient "
           "of the loss with respect to the candidate c, given g = ∂ℒ/∂u for the target attention of 4.1 "
           "(autograd is off in this check).",
    solution=candidate_gradient,
    make_inputs=_gradient_inputs,
    hint="c reaches u only through the scores s_j = h_j·c/√d: ∂ℒ/∂α_j = g·h_j, then the softmax backward "
         "∂ℒ/∂s_j = α_j (g·h_j − Σ_k α_k g·h_k) (lesson 02), then ∂ℒ/∂c = Σ_j ∂ℒ/∂s_j h_j / √d.",
    hints=("which path leads from c to u? The pooled items h_j do not depend on c; the weights do.",
           "chain rule in three steps: u -> α (∂ℒ/∂α_j = g·h_j), α -> s (the softmax backward of lesson 02, "
           "over the real items only), s -> c (s_j = h_j·c/√d).",
           "g_dot_h = (history @ g[..., None]).squeeze(-1); ds = α * (g_dot_h − (α * g_dot_h).sum(-1, keepdim=True)); "
           "dc = (ds[..., None] * history).sum(1) / √d."),
    guards=("attnflex_lab.functional:attention", "attnflex_lab.functional:masked_softmax"),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))

# --- 11.mase ------------------------------------------------------------------------------------


def mase(forecast: torch.Tensor, actual: torch.Tensor, train: torch.Tensor, season: int) -> torch.Tensor:
    """mean|forecast − actual| / mean|y_t − y_{t−m}| over the training series (a 0-dim tensor)."""
    scale = (train[season:] - train[:-season]).abs().mean()              # in-sample seasonal-naive MAE
    return (forecast - actual).abs().mean() / scale


def _series_inputs(gen: torch.Generator):
    season = int(torch.randint(3, 8, (1,), generator=gen))
    t = torch.arange(60, dtype=_F64)
    train = 0.1 * t + torch.sin(2 * torch.pi * t / season) + 0.3 * torch.randn(60, generator=gen, dtype=_F64)
    actual = torch.randn(12, generator=gen, dtype=_F64)
    forecast = actual + 0.5 * torch.randn(12, generator=gen, dtype=_F64)
    return forecast, actual, train, season


register(Exercise(
    id="11.mase",
    prompt="Write mase(forecast, actual, train, season): the mean absolute error of the forecast "
           "divided by the mean absolute error of the seasonal-naive forecast y_t = y_{t−m} on the "
           "training series (0-dim tensor).",
    solution=mase,
    make_inputs=_series_inputs,
    hint="the scale is computed on the *training* series, one season back (train[m:] − train[:-m], "
         "not one step back), and it is a mean of absolute values, not a squared error.",
    hints=("two mean absolute errors, one divided by the other: the forecast's on the test months, and "
           "a naive forecast's on the training series.",
           "the naive forecast of y_t is y_{t−m}, m = season: compare train[m:] with train[:-m], "
           "not one step back.",
           "(forecast − actual).abs().mean() / (train[m:] − train[:-m]).abs().mean()"),
    guards=("attnflex_lab.tasks.timeseries:mase", "attnflex_lab.tasks.timeseries:mae"),
))
