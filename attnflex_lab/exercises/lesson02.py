"""Lesson 02 exercises: backward passes by hand (softmax, dV and dQ of attention).

Inputs are float64 so that a right answer matches the model answer to ~1e-12, and T ≠ S so that a
missing transpose shows up as a wrong shape rather than a silent mistake.
"""

import torch

from . import Exercise, register

_F64 = torch.float64


def softmax_backward(probs: torch.Tensor, grad_probs: torch.Tensor) -> torch.Tensor:
    """dx = p ⊙ (g − ⟨g, p⟩), the vector–Jacobian product of softmax over the last dim."""
    inner = (grad_probs * probs).sum(dim=-1, keepdim=True)  # ⟨g, p⟩ per row: (..., 1)
    return probs * (grad_probs - inner)                     # (..., n)


def _softmax_inputs(gen: torch.Generator):
    logits = 2 * torch.randn(4, 7, generator=gen, dtype=_F64)
    grad_probs = torch.randn(4, 7, generator=gen, dtype=_F64)
    return logits.softmax(dim=-1), grad_probs


register(Exercise(
    id="02.softmax_backward",
    prompt="Write softmax_backward(probs, grad_probs): the gradient with respect to the logits, "
           "given p = softmax(x) over the last dim and the upstream gradient g = ∂ℒ/∂p.",
    solution=softmax_backward,
    make_inputs=_softmax_inputs,
    hint="the Jacobian is diag(p) − p pᵀ, so dx = p ⊙ (g − ⟨g, p⟩): subtract the per-row dot "
         "product (sum over dim=-1 with keepdim=True) before multiplying by p.",
    atol=1e-10, rtol=1e-8,
))


def attention_dv(weights: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """dV = Pᵀ dO for O = P V: weights (..., T, S), grad_out (..., T, Dv) -> (..., S, Dv)."""
    return weights.transpose(-2, -1) @ grad_out  # (..., S, T) @ (..., T, Dv) -> (..., S, Dv)


def _dv_inputs(gen: torch.Generator):
    weights = torch.randn(2, 5, 7, generator=gen, dtype=_F64).softmax(dim=-1)  # (B, T, S)
    grad_out = torch.randn(2, 5, 3, generator=gen, dtype=_F64)                  # (B, T, Dv)
    return weights, grad_out


register(Exercise(
    id="02.attention_dv",
    prompt="Write attention_dv(weights, grad_out): ∂ℒ/∂V for O = P V, with weights P (..., T, S) "
           "and grad_out dO = ∂ℒ/∂O (..., T, Dv). The answer has V's shape (..., S, Dv).",
    solution=attention_dv,
    make_inputs=_dv_inputs,
    hint="O_t = Σ_s P_ts V_s, so V_s collects P_ts · dO_t over every query t: dV = Pᵀ dO. "
         "Transpose the last two dims (not .T, which reverses every dim of a batched tensor).",
    atol=1e-10, rtol=1e-8,
))


def attention_dq(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor,
                 scale: float) -> torch.Tensor:
    """dQ for O = softmax(scale · Q Kᵀ) V, given dO: recompute P, then dP, dZ and dQ."""
    weights = (scale * q @ k.transpose(-2, -1)).softmax(dim=-1)  # P: (..., T, S)
    grad_weights = grad_out @ v.transpose(-2, -1)  # dP = dO Vᵀ: (..., T, Dv) @ (..., Dv, S)
    row_dot = (grad_weights * weights).sum(dim=-1, keepdim=True)  # rowsum(dP ⊙ P): (..., T, 1)
    grad_scores = weights * (grad_weights - row_dot)  # dZ: (..., T, S), Z the scores
    return scale * grad_scores @ k  # (..., T, S) @ (..., S, D) -> (..., T, D)


def _dq_inputs(gen: torch.Generator):
    q = torch.randn(2, 5, 4, generator=gen, dtype=_F64)         # (B, T, D)
    k = torch.randn(2, 7, 4, generator=gen, dtype=_F64)         # (B, S, D)
    v = torch.randn(2, 7, 3, generator=gen, dtype=_F64)         # (B, S, Dv)
    grad_out = torch.randn(2, 5, 3, generator=gen, dtype=_F64)  # (B, T, Dv)
    scale = float(torch.empty(1, dtype=_F64).uniform_(0.3, 1.5, generator=gen))
    return q, k, v, grad_out, scale


register(Exercise(
    id="02.attention_dq",
    prompt="Write attention_dq(q, k, v, grad_out, scale): ∂ℒ/∂Q for O = softmax(scale · Q Kᵀ) V "
           "(softmax over the keys), given grad_out dO = ∂ℒ/∂O.",
    solution=attention_dq,
    make_inputs=_dq_inputs,
    hint="go backwards one step at a time: P = softmax(scale · Q Kᵀ); dP = dO Vᵀ; "
         "dZ = P ⊙ (dP − rowsum(dP ⊙ P)); dQ = scale · dZ K. Forgetting the scale or the rowsum "
         "term are the usual slips.",
    atol=1e-10, rtol=1e-8,
))
