"""Lesson 04 exercises: one step of additive attention, and alignment accuracy."""

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
))
