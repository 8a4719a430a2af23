"""Lesson 01 exercises: scaled dot-product scores, masked softmax, attention pooling, and
Nadaraya–Watson kernel regression.

The model answers use plain torch on purpose: ``show_solution`` prints them for the learner.
"""

import math

import torch

from . import Exercise, register

# --- 01.scaled_dot_scores ---------------------------------------------------------------------


def scaled_dot_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """z_ij = q_i · k_j / √d for q (B, T, d) and k (B, S, d); returns (B, T, S)."""
    d = q.shape[-1]
    return q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, T, d) @ (B, d, S) -> (B, T, S)


def _score_inputs(gen: torch.Generator):
    batch, queries, keys = (int(n) for n in torch.randint(1, 6, (3,), generator=gen))
    width = int(torch.randint(2, 33, (1,), generator=gen))
    q = torch.randn(batch, queries, width, generator=gen)  # (B, T, d)
    k = torch.randn(batch, keys, width, generator=gen)     # (B, S, d)
    return q, k


register(Exercise(
    id="01.scaled_dot_scores",
    prompt="Write scaled_dot_scores(q, k): q (B, T, d), k (B, S, d) -> scores (B, T, S) "
           "= q kᵀ / √d.",
    solution=scaled_dot_scores,
    make_inputs=_score_inputs,
    hint="transpose only the last two dims of k (k.transpose(-2, -1), not k.T) and divide by "
         "the square root of d = q.shape[-1], not by d.",
    hints=("entry (i, j) is the dot product of query i with key j: one batched matmul gives all of them.",
           "q @ k.transpose(-2, -1) has shape (B, T, S); k.T would reverse every dim of a 3-D tensor.",
           "divide by math.sqrt(d) with d = q.shape[-1]: the scale keeps the scores' variance near 1."),
    guards=("attnflex_lab.functional:scaled_dot_scores", "attnflex_lab.functional:dot_scores"),
))

# --- 01.masked_softmax ------------------------------------------------------------------------


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim where mask is True; masked entries get 0, a fully masked row 0s."""
    scores = scores.masked_fill(~mask, float("-inf"))            # (..., T, S)
    row_max = scores.amax(dim=-1, keepdim=True)                  # (..., T, 1), -inf if all masked
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(scores - row_max)                            # exp(-inf) = 0 at masked entries
    total = exp.sum(dim=-1, keepdim=True)                        # (..., T, 1), 0 if all masked
    return exp / torch.where(total > 0, total, torch.ones_like(total))  # 0 / 1 = 0, never NaN


def _mask_inputs(gen: torch.Generator):
    queries, keys = (int(n) for n in torch.randint(2, 7, (2,), generator=gen))
    scores = torch.randn(2, queries, keys, generator=gen) * 3          # (B, T, S)
    mask = torch.rand(2, queries, keys, generator=gen) > 0.3           # (B, T, S), True = attend
    mask[0, -1] = False  # always one fully masked row: it must come out as zeros, not NaN
    mask[1, 0] = True    # and one row with nothing masked
    return scores, mask


register(Exercise(
    id="01.masked_softmax",
    prompt="Write masked_softmax(scores, mask): softmax over the last dim using only entries "
           "where mask is True; masked entries get weight 0 and a fully masked row is all zeros.",
    solution=masked_softmax,
    make_inputs=_mask_inputs,
    hint="fill masked scores with -inf before the softmax; a row that is all -inf gives 0/0 = NaN, "
         "so handle it (replace its max by 0, and divide by 1 where the row sum is 0). "
         "Filling with -1e9 instead gives a fully masked row uniform weights, not zeros.",
    hints=("a masked entry should contribute exp(score) = 0 to its row: which score has that exponential?",
           "masked_fill(~mask, float('-inf')) then a stable softmax; now try a row whose mask is all False.",
           "an all -inf row gives 0/0 = NaN: replace a -inf row max by 0 and divide by 1 where the row sum is 0."),
    guards=("attnflex_lab.functional:masked_softmax", "attnflex_lab.ops:softmax"),
))

# --- 01.attention_pool ------------------------------------------------------------------------


def attention_pool(e: torch.Tensor, w_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """α_t = softmax_t(e_tᵀ w_a), c = Σ_t α_t e_t for e (B, T, d), w_a (d,). Returns (c, α)."""
    scores = e @ w_a                              # (B, T, d) @ (d,) -> (B, T)
    alpha = torch.softmax(scores, dim=-1)         # (B, T), over the T positions
    context = (alpha.unsqueeze(-1) * e).sum(-2)   # (B, T, 1) * (B, T, d) -> (B, d)
    return context, alpha


def _pool_inputs(gen: torch.Generator):
    batch = int(torch.randint(1, 5, (1,), generator=gen))
    positions, width = (int(n) for n in torch.randint(2, 9, (2,), generator=gen))
    e = torch.randn(batch, positions, width, generator=gen)   # (B, T, d)
    w_a = torch.randn(width, generator=gen)                   # (d,)
    return e, w_a


register(Exercise(
    id="01.attention_pool",
    prompt="Write attention_pool(e, w_a): e (B, T, d), w_a (d,) -> (context (B, d), alpha (B, T)) "
           "with alpha = softmax over T of e @ w_a and context = Σ_t alpha_t e_t.",
    solution=attention_pool,
    make_inputs=_pool_inputs,
    hint="one score per position: e @ w_a has shape (B, T); the softmax runs over T (dim=-1 of "
         "the scores), and the context sums alpha[..., None] * e over T (dim=-2).",
    hints=("each position t gets one number, e_t · w_a; the weights are a softmax over the positions.",
           "e @ w_a is (B, T); softmax over dim=-1 gives alpha (B, T).",
           "context = (alpha.unsqueeze(-1) * e).sum(dim=-2): weight each row of e, add them up over T."),
    guards=("attnflex_lab.functional:attention_pool", "attnflex_lab.ops:attention_pool"),
))

# --- 01.nadaraya_watson -----------------------------------------------------------------------


def nadaraya_watson(x_query: torch.Tensor, x_keys: torch.Tensor, y_values: torch.Tensor,
                    bandwidth: float) -> torch.Tensor:
    """ŷ(x) = Σ_j α_j(x) y_j, α(x) = softmax_j(-(x - x_j)² / (2h²)); x_query (T,) -> ŷ (T,)."""
    diff = x_query[:, None] - x_keys[None, :]                     # (T, 1) - (1, S) -> (T, S)
    weights = torch.softmax(-diff**2 / (2 * bandwidth**2), dim=-1)  # (T, S), rows sum to 1
    return weights @ y_values                                     # (T, S) @ (S,) -> (T,)


def _kernel_inputs(gen: torch.Generator):
    x_keys = torch.rand(20, generator=gen) * 6                              # (S,)
    y_values = torch.sin(x_keys) + 0.2 * torch.randn(20, generator=gen)     # (S,)
    x_query = torch.linspace(0, 6, 15)                                      # (T,)
    bandwidth = float(torch.empty(1).uniform_(0.2, 1.5, generator=gen))
    return x_query, x_keys, y_values, bandwidth


register(Exercise(
    id="01.nadaraya_watson",
    prompt="Write nadaraya_watson(x_query, x_keys, y_values, bandwidth): kernel regression "
           "ŷ (T,) with Gaussian-kernel attention weights softmax_j(-(x - x_j)² / (2 h²)).",
    solution=nadaraya_watson,
    make_inputs=_kernel_inputs,
    hint="build the (T, S) table of differences x_query[:, None] - x_keys[None, :]; the softmax "
         "runs over the keys (dim=-1), and the bandwidth h is squared in 2h².",
    hints=("the score of key j for query x is -(x - x_j)² / (2h²): close keys score high.",
           "broadcast x_query[:, None] - x_keys[None, :] to a (T, S) table; softmax over the keys, dim=-1.",
           "the prediction is the weighted average of y: weights (T, S) @ y_values (S,) -> (T,)."),
    guards=("attnflex_lab.functional:nadaraya_watson",),
))

# --- 01.entropy_slope: a derivation, graded with autograd off -----------------------------------


def entropy_slope(z: torch.Tensor, tau: float) -> torch.Tensor:
    """dH/dτ for α = softmax(z/τ) and H = −Σ α log α over the last dim: Var_α(z) / τ³."""
    alpha = torch.softmax(z / tau, dim=-1)                         # (..., S)
    mean = (alpha * z).sum(dim=-1, keepdim=True)                   # E_α[z]: (..., 1)
    return (alpha * (z - mean) ** 2).sum(dim=-1) / tau**3          # Var_α(z) / τ³: (...)


def _slope_inputs(gen: torch.Generator):
    z = 2 * torch.randn(4, 7, generator=gen, dtype=torch.float64)            # (B, S) scores
    tau = float(torch.empty(1, dtype=torch.float64).uniform_(0.3, 3.0, generator=gen))
    return z, tau


register(Exercise(
    id="01.entropy_slope",
    prompt="Derive and write entropy_slope(z, tau): dH/dτ in closed form for α = softmax(z / τ) over the "
           "last dim and H = −Σ α log α; z (..., S) -> (...). Autograd is off in the check.",
    solution=entropy_slope,
    make_inputs=_slope_inputs,
    hint="with lse = log Σ exp(z/τ): log α_j = z_j/τ − lse, so H = lse − E_α[z]/τ; differentiating gives "
         "dH/dτ = Var_α(z) / τ³ (the variance of the scores under the weights, divided by τ cubed).",
    hints=("write log α_j = z_j/τ − lse with lse = log Σ_k exp(z_k/τ); then H = lse − E_α[z]/τ.",
           "∂lse/∂τ = −E_α[z]/τ² and ∂α_j/∂τ = −α_j (z_j − E_α[z])/τ²; differentiate E_α[z]/τ with the product rule.",
           "everything but a variance cancels: dH/dτ = Var_α(z)/τ³, Var_α(z) = Σ_j α_j (z_j − E_α[z])²."),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))
