"""Lesson 02 exercises: backward passes by hand (softmax, dV, dQ and dK of attention, additive scores).

Every check here runs the learner's function with autograd off and the package's backward switched
off (``guard.py``): the gradient has to be derived. Inputs are float64 so that a right answer
matches the model answer to ~1e-12, and T ≠ S so that a missing transpose shows up as a wrong shape
rather than a silent mistake.
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
    hints=("write ∂p_i/∂x_j for i = j and for i ≠ j; both cases fit p_i (δ_ij − p_j).",
           "dx_j = Σ_i g_i p_i (δ_ij − p_j): one term from the diagonal, one shared by every j.",
           "dx = p ⊙ (g − ⟨g, p⟩) with ⟨g, p⟩ = (g * p).sum(-1, keepdim=True)."),
    guards=("attnflex_lab.ops:SoftmaxFunction.backward",),
    no_autograd=True,
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
    hints=("O_t = Σ_s P_ts V_s: which outputs does one value row V_s touch, and with what weight?",
           "dV_s = Σ_t P_ts dO_t: a sum over queries, i.e. a matmul with P transposed.",
           "weights.transpose(-2, -1) @ grad_out, shape (..., S, Dv)."),
    guards=("attnflex_lab.ops:AttentionFunction.backward",),
    no_autograd=True,
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
    hints=("chain rule in four steps, backwards: O = P V, P = softmax(Z), Z = s · Q Kᵀ.",
           "dP = dO Vᵀ; then dZ from the softmax VJP of 02.softmax_backward, row by row.",
           "dZ = P ⊙ (dP − rowsum(dP ⊙ P)); dQ = s · dZ K."),
    guards=("attnflex_lab.ops:AttentionFunction.backward",),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))


def attention_dk(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor,
                 scale: float) -> torch.Tensor:
    """dK for O = softmax(scale · Q Kᵀ) V: the same dZ as for dQ, read through Z's other factor."""
    weights = (scale * q @ k.transpose(-2, -1)).softmax(dim=-1)  # P: (..., T, S)
    grad_weights = grad_out @ v.transpose(-2, -1)                 # dP = dO Vᵀ: (..., T, S)
    row_dot = (grad_weights * weights).sum(dim=-1, keepdim=True)  # ρ = rowsum(dP ⊙ P): (..., T, 1)
    grad_scores = weights * (grad_weights - row_dot)              # dZ: (..., T, S)
    return scale * grad_scores.transpose(-2, -1) @ q              # (..., S, T) @ (..., T, D) -> (..., S, D)


register(Exercise(
    id="02.attention_dk",
    prompt="Derive and write attention_dk(q, k, v, grad_out, scale): ∂ℒ/∂K for "
           "O = softmax(scale · Q Kᵀ) V, given dO. The answer has K's shape (..., S, D).",
    solution=attention_dk,
    make_inputs=_dq_inputs,
    hint="dZ is the same as for dQ; z_ts = scale · q_t · k_s, so k_s collects scale · dZ_ts q_t over "
         "every query t: dK = scale · dZᵀ Q (transpose the last two dims of dZ).",
    hints=("the path to K runs through the scores only: find dZ exactly as for dQ.",
           "z_ts = s · q_t · k_s: for a fixed key s, which queries does k_s meet, and with what weight?",
           "dK = s · dZᵀ Q: dZ.transpose(-2, -1) @ q, times the scale."),
    guards=("attnflex_lab.ops:AttentionFunction.backward",),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))


def additive_scores_backward(q, k, w_q, w_k, v_a, grad_scores):
    """(dq, dk, dv_a) for Bahdanau's z_ij = v_aᵀ tanh(W_q q_i + W_k k_j), given dZ = ∂ℒ/∂z.

    With h_ij = tanh(a_ij): da_ij = dz_ij · v_a ⊙ (1 − h_ij²); dq_i = W_qᵀ Σ_j da_ij,
    dk_j = W_kᵀ Σ_i da_ij, dv_a = Σ_ij dz_ij h_ij.
    """
    hidden = torch.tanh((q @ w_q.T).unsqueeze(-2) + (k @ w_k.T).unsqueeze(-3))  # h: (..., T, S, A)
    grad_pre = grad_scores.unsqueeze(-1) * v_a * (1 - hidden**2)                # da: (..., T, S, A)
    grad_q = grad_pre.sum(dim=-2) @ w_q                                          # (..., T, A) @ (A, Dq) -> (..., T, Dq)
    grad_k = grad_pre.sum(dim=-3) @ w_k                                          # (..., S, A) @ (A, Dk) -> (..., S, Dk)
    grad_v_a = (grad_scores.unsqueeze(-1) * hidden).flatten(0, -2).sum(0)        # (A,)
    return grad_q, grad_k, grad_v_a


def _additive_inputs(gen: torch.Generator):
    A, Dq, Dk = 6, 3, 4                                                   # distinct widths: a wrong transpose fails
    q = torch.randn(2, 5, Dq, generator=gen, dtype=_F64)                  # (B, T, Dq)
    k = torch.randn(2, 7, Dk, generator=gen, dtype=_F64)                  # (B, S, Dk)
    w_q = torch.randn(A, Dq, generator=gen, dtype=_F64)                   # (A, Dq)
    w_k = torch.randn(A, Dk, generator=gen, dtype=_F64)                   # (A, Dk)
    v_a = torch.randn(A, generator=gen, dtype=_F64)                       # (A,)
    grad_scores = torch.randn(2, 5, 7, generator=gen, dtype=_F64)         # (B, T, S), random upstream
    return q, k, w_q, w_k, v_a, grad_scores


register(Exercise(
    id="02.additive_backward",
    prompt="Derive and write additive_scores_backward(q, k, w_q, w_k, v_a, grad_scores) -> (dq, dk, dv_a) "
           "for Bahdanau's scores z_ij = v_aᵀ tanh(W_q q_i + W_k k_j), given grad_scores = ∂ℒ/∂z.",
    solution=additive_scores_backward,
    make_inputs=_additive_inputs,
    hint="recompute h_ij = tanh(W_q q_i + W_k k_j) (..., T, S, A); da_ij = dz_ij · v_a ⊙ (1 − h_ij²); "
         "dq = (Σ_j da_ij) W_q, dk = (Σ_i da_ij) W_k, dv_a = Σ_ij dz_ij h_ij.",
    hints=("name the pre-activation a_ij = W_q q_i + W_k k_j and h_ij = tanh(a_ij); then z_ij = v_a · h_ij.",
           "dv_a = Σ_ij dz_ij h_ij; da_ij = dz_ij · v_a ⊙ (1 − h_ij²), since tanh' = 1 − tanh².",
           "q_i appears in every a_ij of its row, k_j in every a_ij of its column: sum da over j (for dq) "
           "or i (for dk), then multiply by W_q or W_k (shape (A, D)) on the right."),
    guards=("attnflex_lab.functional:additive_scores",),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))
