"""Lesson 04 exercises: one step of additive attention, alignment accuracy, and how the decoder
state moves the alignment (a derivation)."""

import torch

from ..functional import masked_softmax
from . import Exercise, register


def additive_attention_weights(u: torch.Tensor, h: torch.Tensor, W_q: torch.Tensor,
                               W_k: torch.Tensor, v_a: torch.Tensor,
                               mask: torch.Tensor) -> torch.Tensor:
    """α_j = softmax_j(v_aᵀ tanh(W_q u + W_k h_j)) over the unmasked j.

    u (B, Dq) decoder state, h (B, S, Dk) encoder states, W_q (A, Dq), W_k (A, Dk), v_a (A,),
    mask (B, S) True = a real source character. Returns α (B, S).
    """
    hidden = torch.tanh((u @ W_q.T).unsqueeze(1) + h @ W_k.T)  # (B, 1, A) + (B, S, A) -> (B, S, A)
    scores = hidden @ v_a                                       # (B, S, A) @ (A,) -> (B, S)
    return masked_softmax(scores, mask)                         # (B, S)


def _additive_inputs(gen: torch.Generator):
    B, S, Dq, Dk, A = 3, 7, 5, 4, 6
    mask = torch.ones(B, S, dtype=torch.bool)
    mask[1, 4:] = False  # a shorter source, padded
    mask[2, 6:] = False
    return (torch.randn(B, Dq, generator=gen), torch.randn(B, S, Dk, generator=gen),
            torch.randn(A, Dq, generator=gen), torch.randn(A, Dk, generator=gen),
            torch.randn(A, generator=gen), mask)


register(Exercise(
    id="04.additive_attention_weights",
    prompt="Write additive_attention_weights(u, h, W_q, W_k, v_a, mask): Bahdanau's scores "
           "v_a·tanh(W_q u + W_k h_j), then a softmax over the source positions that the mask keeps.",
    solution=additive_attention_weights,
    make_inputs=_additive_inputs,
    hint="padding must get weight 0: use attnflex_lab.functional.masked_softmax(scores, mask) "
         "(or fill masked scores with -inf before softmax).",
    hints=("shapes first: W_q u is (B, A), W_k h_j is (B, S, A); add them with a broadcast over S.",
           "scores z_j = v_a · tanh(W_q u + W_k h_j): tanh(...) @ v_a gives (B, S).",
           "padding must get weight 0: masked_softmax(scores, mask) from lesson 01, or fill masked "
           "scores with -inf before torch.softmax."),
    guards=("attnflex_lab.functional:additive_scores", "attnflex_lab.models.seq2seq:AdditiveAttention.forward"),
))


def alignment_accuracy(weights: torch.Tensor, true_positions: torch.Tensor,
                       tolerance: int) -> torch.Tensor:
    """Fraction of defined steps (true position >= 0) whose argmax is within ``tolerance``.

    weights (N, T, S), true_positions (N, T) with -1 = undefined. Returns a 0-dim tensor.
    """
    defined = true_positions >= 0                                      # (N, T)
    close = (weights.argmax(-1) - true_positions).abs() <= tolerance   # (N, T)
    return close[defined].float().mean()


def _alignment_inputs(gen: torch.Generator):
    weights = torch.rand(4, 10, 12, generator=gen)
    truth = torch.randint(0, 12, (4, 10), generator=gen)
    truth[torch.rand(4, 10, generator=gen) < 0.3] = -1
    peaks = (truth.clamp_min(0) + torch.randint(-1, 2, (4, 10), generator=gen)).clamp(0, 11)
    weights.scatter_(-1, peaks.unsqueeze(-1), 5.0)   # most rows peak at or next to the truth
    return weights, truth, int(torch.randint(0, 2, (1,), generator=gen))


register(Exercise(
    id="04.alignment_accuracy",
    prompt="Write alignment_accuracy(weights, true_positions, tolerance): the fraction of steps "
           "with a defined true position (>= 0) whose most-attended position is within tolerance.",
    solution=alignment_accuracy,
    make_inputs=_alignment_inputs,
    hint="take argmax over the last dim (the source), compare with |argmax - truth| <= tolerance, "
         "and average only where truth >= 0.",
    hints=("the most-attended position of each step is an argmax over the source (the last dim).",
           "a step counts when |argmax − truth| ≤ tolerance; steps with truth −1 are left out entirely.",
           "close = (weights.argmax(-1) - true_positions).abs() <= tolerance; average close[true_positions >= 0]."),
    guards=("attnflex_lab.metrics:alignment_accuracy",),
))


_F64 = torch.float64


def alignment_position_grad(u: torch.Tensor, h: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor,
                            v_a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """∂p̄/∂u for the attention's mean source position p̄ = Σ_j α_j j at one decoder step.

    With a_j = W_q u + W_k h_j, z_j = v_a·tanh(a_j), α = softmax over the unmasked j:
    ∂p̄/∂z_j = α_j (j − p̄) (the softmax Jacobian), ∂z_j/∂u = W_qᵀ (v_a ⊙ (1 − tanh²(a_j))), so
    ∂p̄/∂u = W_qᵀ Σ_j α_j (j − p̄) v_a ⊙ (1 − tanh²(a_j)). Padding has α_j = 0 and adds nothing.
    u (B, Dq), h (B, S, Dk), W_q (A, Dq), W_k (A, Dk), v_a (A,), mask (B, S). Returns (B, Dq).
    """
    hidden = torch.tanh((u @ W_q.T).unsqueeze(1) + h @ W_k.T)         # tanh(a_j): (B, S, A)
    alpha = masked_softmax(hidden @ v_a, mask)                         # (B, S)
    positions = torch.arange(h.shape[1], dtype=u.dtype)                # j: (S,)
    mean_position = (alpha * positions).sum(-1, keepdim=True)          # p̄: (B, 1)
    grad_scores = alpha * (positions - mean_position)                  # ∂p̄/∂z_j: (B, S)
    grad_pre = grad_scores.unsqueeze(-1) * v_a * (1 - hidden**2)       # ∂p̄/∂a_j: (B, S, A)
    return grad_pre.sum(1) @ W_q                                       # (B, A) @ (A, Dq) -> (B, Dq)


def _position_inputs(gen: torch.Generator):
    return tuple(x.double() if x.is_floating_point() else x for x in _additive_inputs(gen))


register(Exercise(
    id="04.alignment_position_grad",
    prompt="Derive and write alignment_position_grad(u, h, W_q, W_k, v_a, mask): the gradient, with respect "
           "to the decoder state u, of the mean attended position p̄ = Σ_j α_j j, where α is the additive "
           "attention of exercise 1. Returns (B, Dq): the direction that moves the alignment right.",
    solution=alignment_position_grad,
    make_inputs=_position_inputs,
    hint="∂p̄/∂z_j = α_j (j − p̄); ∂z_j/∂u = W_qᵀ (v_a ⊙ (1 − tanh²(a_j))) with a_j = W_q u + W_k h_j; "
         "sum over j.",
    hints=("three links: u -> a_j = W_q u + W_k h_j -> z_j = v_a·tanh(a_j) -> α = softmax(z) -> p̄ = Σ α_j j.",
           "the softmax Jacobian (lesson 02) gives ∂p̄/∂z_j = α_j (j − p̄); padded j have α_j = 0.",
           "∂z_j/∂a_j = v_a ⊙ (1 − tanh²(a_j)) and ∂a_j/∂u = W_q: sum α_j (j − p̄) v_a ⊙ (1 − tanh²(a_j)) "
           "over j, (B, A), then @ W_q."),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))
