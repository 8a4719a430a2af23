"""Reference attention math, written with plain torch ops so autograd supplies the gradients.

This module is the ground truth the hand-derived backward passes in ``ops`` are checked against.
Shapes: q (..., T, D), k (..., S, D), v (..., S, Dv); scores z_ij and weights (..., T, S). Symbols follow
the notation table of lesson 00.
Masks are boolean and True means "may attend" (as in ``F.scaled_dot_product_attention``).
"""

from __future__ import annotations

import math

import torch

from ._validate import (
    check_attention_inputs,
    check_floating,
    check_mask,
    check_min_dims,
    check_pool_inputs,
    check_scale,
    check_tensor,
)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None,
                   dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` that gives masked entries weight 0.

    A row whose entries are all masked gets all zeros (there is nothing to attend to), never NaN.
    """
    check_floating(scores=scores)
    check_mask(mask, scores.shape, scores.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # Subtracting the row max changes nothing mathematically (softmax is shift invariant) but keeps
    # exp() from overflowing. A fully masked row has max -inf; use 0 there so exp(-inf - 0) = 0.
    row_max = scores.detach().amax(dim=dim, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(scores - row_max)
    total = exp.sum(dim=dim, keepdim=True)
    # A fully masked row has total 0: divide by 1 there (0 / 1 = 0). Dividing by a tiny clamp
    # would also give 0 forward, but its backward multiplies by 1/tiny and can overflow to inf.
    return exp / torch.where(total > 0, total, torch.ones_like(total))


# --- score functions: how well does each query match each key? -> (..., T, S) -----------------

def dot_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """z_ij = q_i · k_j."""
    check_floating(q=q, k=k)
    _check_qk(q, k)
    return q @ k.transpose(-2, -1)  # (..., T, D) @ (..., D, S) -> (..., T, S)


def scaled_dot_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """z_ij = scale · q_i · k_j, scale = 1/√D by default so scores keep unit variance as D grows."""
    scores = dot_scores(q, k)  # (..., T, S); validates q and k before D is read
    scale = default_scale(q) if scale is None else check_scale(scale)
    return scores * scale


def general_scores(q: torch.Tensor, k: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Luong's "general" score z_ij = q_iᵀ W k_j; W is (Dq, Dk), so q and k may differ in width."""
    check_floating(q=q, k=k, weight=weight)
    check_min_dims("q", q, 2, "(..., T, Dq)")
    check_min_dims("k", k, 2, "(..., S, Dk)")
    _check_same_leading(q, k)
    if weight.shape != (q.shape[-1], k.shape[-1]):
        raise ValueError(f"weight must have shape (Dq, Dk) = ({q.shape[-1]}, {k.shape[-1]}) for "
                         f"q {tuple(q.shape)} and k {tuple(k.shape)}, got {tuple(weight.shape)}")
    q_w = q @ weight                    # (..., T, Dq) @ (Dq, Dk) -> (..., T, Dk)
    return q_w @ k.transpose(-2, -1)    # (..., T, Dk) @ (..., Dk, S) -> (..., T, S)


def additive_scores(q: torch.Tensor, k: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
                    v_a: torch.Tensor) -> torch.Tensor:
    """Bahdanau's additive score z_ij = v_aᵀ tanh(W_q q_i + W_k k_j).

    q (..., T, Dq), k (..., S, Dk), w_q = W_q (A, Dq), w_k = W_k (A, Dk), v_a (A,) where A is the
    hidden width.
    """
    check_floating(q=q, k=k, w_q=w_q, w_k=w_k, v_a=v_a)
    check_min_dims("q", q, 2, "(..., T, Dq)")
    check_min_dims("k", k, 2, "(..., S, Dk)")
    hidden = v_a.shape[0] if v_a.dim() == 1 else None
    if hidden is None or w_q.shape != (hidden, q.shape[-1]) or w_k.shape != (hidden, k.shape[-1]):
        raise ValueError(f"additive scores need v_a (A,), w_q (A, Dq={q.shape[-1]}), "
                         f"w_k (A, Dk={k.shape[-1]}); got v_a {tuple(v_a.shape)}, "
                         f"w_q {tuple(w_q.shape)}, w_k {tuple(w_k.shape)}")
    _check_same_leading(q, k)
    qa = q @ w_q.T  # (..., T, A)
    ka = k @ w_k.T  # (..., S, A)
    # (..., T, 1, A) + (..., 1, S, A) -> (..., T, S, A)
    hidden_act = torch.tanh(qa.unsqueeze(-2) + ka.unsqueeze(-3))
    return hidden_act @ v_a  # (..., T, S, A) @ (A,) -> (..., T, S)


def default_scale(q: torch.Tensor) -> float:
    """1/√D: keeps q·k at unit variance when q and k have unit-variance entries."""
    check_tensor("q", q)
    if q.dim() == 0 or q.shape[-1] == 0:
        raise ValueError(f"q must have shape (..., D) with D >= 1, got shape {tuple(q.shape)}")
    return 1.0 / math.sqrt(q.shape[-1])


def _check_same_leading(q: torch.Tensor, k: torch.Tensor) -> None:
    """Leading (batch, head) dims must match exactly: nothing is broadcast silently."""
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must share leading dims, got q {tuple(q.shape)} "
                         f"and k {tuple(k.shape)}")


def _check_qk(q: torch.Tensor, k: torch.Tensor) -> None:
    check_min_dims("q", q, 2, "(..., T, D)")
    check_min_dims("k", k, 2, "(..., S, D)")
    if q.shape[-1] != k.shape[-1] or q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q (..., T, D) and k (..., S, D) must share D and leading dims, got "
                         f"q {tuple(q.shape)} and k {tuple(k.shape)}")


# --- attention: scores -> weights -> weighted average of values ------------------------------

def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention. Returns ``(out (..., T, Dv), weights (..., T, S))``.

    weights = masked_softmax(scale · q kᵀ, mask);  out = weights @ v.
    """
    check_attention_inputs(q, k, v, mask)
    scale = default_scale(q) if scale is None else check_scale(scale)
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T, D) @ (..., D, S) -> (..., T, S)
    weights = masked_softmax(scores, mask)      # (..., T, S), rows sum to 1 (0 if fully masked)
    out = weights @ v                           # (..., T, S) @ (..., S, Dv) -> (..., T, Dv)
    return out, weights


def attention_pool(e: torch.Tensor, w_a: torch.Tensor, mask: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool T feature vectors into one with a learned context vector.

    α_t = softmax_t(e_tᵀ w_a),  c = Σ_t α_t e_t.
    e (..., T, d) are the features, w_a (d,) the learned context vector (one score per position
    needs a vector in R^d, not a T×d matrix), mask (..., T) with True = keep.
    Returns ``(c (..., d), α (..., T))``.
    """
    check_pool_inputs(e, w_a, mask)
    scores = e @ w_a                            # (..., T, d) @ (d,) -> (..., T)
    alpha = masked_softmax(scores, mask)        # (..., T)
    context = (alpha.unsqueeze(-1) * e).sum(-2)  # (..., T, 1) * (..., T, d) -> (..., d)
    return context, alpha


def nadaraya_watson(x_query: torch.Tensor, x_keys: torch.Tensor, y_values: torch.Tensor,
                    bandwidth: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Nadaraya–Watson kernel regression (1964) as attention with a Gaussian kernel.

    ŷ(x) = Σ_j α_j(x) y_j with α(x) = softmax_j(-(x - x_j)² / (2 h²)).
    x_query (T,), x_keys (S,), y_values (S,) or (S, Dv).
    Returns ``(ŷ (T,) or (T, Dv), weights (T, S))``.
    """
    check_floating(x_query=x_query, x_keys=x_keys, y_values=y_values)
    if (x_query.dim() != 1 or x_keys.dim() != 1 or y_values.dim() not in (1, 2)
            or y_values.shape[0] != x_keys.shape[0]):
        raise ValueError(f"need x_query (T,), x_keys (S,), y_values (S,) or (S, Dv); got "
                         f"{tuple(x_query.shape)}, {tuple(x_keys.shape)}, {tuple(y_values.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    diff = x_query.unsqueeze(1) - x_keys.unsqueeze(0)  # (T, 1) - (1, S) -> (T, S)
    weights = masked_softmax(-diff.pow(2) / (2 * bandwidth**2))  # (T, S)
    return weights @ y_values, weights                 # (T, S) @ (S, [Dv]) -> (T, [Dv])


# --- the softmax Jacobian, for lessons that look at it whole --------------------------------

def softmax_jacobian(probs: torch.Tensor) -> torch.Tensor:
    """J = ∂p/∂x = diag(p) − p pᵀ for each row p of ``probs`` (..., S). Returns (..., S, S).

    Symmetric, rows summing to 0, positive semi-definite (xᵀJx = Var_p(x)); near zero when p is
    near one-hot, which is why a saturated softmax passes almost no gradient to its scores.
    """
    check_floating(probs=probs)
    check_min_dims("probs", probs, 1, "(..., S)")
    return torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)  # (..., S, S)
