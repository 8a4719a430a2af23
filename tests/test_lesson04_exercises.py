"""Lesson 04 exercises: the model answers pass; plausible slips in the derivation are refused."""

import pytest
import torch

from attnflex_lab.exercises import ExerciseError, check, get
from attnflex_lab.functional import masked_softmax


def _parts(u, h, W_q, W_k, v_a, mask):
    hidden = torch.tanh((u @ W_q.T).unsqueeze(1) + h @ W_k.T)         # (B, S, A)
    alpha = masked_softmax(hidden @ v_a, mask)                         # (B, S)
    positions = torch.arange(h.shape[1], dtype=u.dtype)
    return hidden, alpha, positions, (alpha * positions).sum(-1, keepdim=True)


def _forgets_tanh_derivative(u, h, W_q, W_k, v_a, mask):
    hidden, alpha, j, mean = _parts(u, h, W_q, W_k, v_a, mask)
    return (alpha * (j - mean)).sum(-1, keepdim=True) * v_a @ W_q      # as if tanh were the identity


def _forgets_the_mean_position(u, h, W_q, W_k, v_a, mask):
    hidden, alpha, j, _ = _parts(u, h, W_q, W_k, v_a, mask)
    return ((alpha * j).unsqueeze(-1) * v_a * (1 - hidden**2)).sum(1) @ W_q   # α_j j, not α_j (j − p̄)


def _forgets_v_a(u, h, W_q, W_k, v_a, mask):
    hidden, alpha, j, mean = _parts(u, h, W_q, W_k, v_a, mask)
    return ((alpha * (j - mean)).unsqueeze(-1) * (1 - hidden**2)).sum(1) @ W_q   # right shape, no v_a


@pytest.mark.parametrize("wrong", [_forgets_tanh_derivative, _forgets_the_mean_position, _forgets_v_a])
def test_the_alignment_gradient_refuses_plausible_slips(wrong):
    with pytest.raises(ExerciseError, match="(?s)04.alignment_position_grad: not yet right.*entries differ"):
        check("04.alignment_position_grad", wrong)


def test_the_alignment_gradient_is_autograds_and_padding_adds_nothing():
    u, h, W_q, W_k, v_a, mask = get("04.alignment_position_grad").make_inputs(torch.Generator().manual_seed(1))
    u = u.clone().requires_grad_()
    _, alpha, j, mean = _parts(u, h, W_q, W_k, v_a, mask)
    (grad,) = torch.autograd.grad(mean.sum(), u)
    torch.testing.assert_close(get("04.alignment_position_grad").solution(u.detach(), h, W_q, W_k, v_a, mask), grad)
    moved = h.clone()
    moved[~mask] = 100.0                                               # padding's content is never read
    torch.testing.assert_close(get("04.alignment_position_grad").solution(u.detach(), moved, W_q, W_k, v_a, mask),
                               grad)


def test_alignment_accuracy_that_counts_undefined_steps_is_refused():
    def counts_every_step(weights, truth, tolerance):
        return ((weights.argmax(-1) - truth).abs() <= tolerance).float().mean()
    with pytest.raises(ExerciseError, match="entries differ"):
        check("04.alignment_accuracy", counts_every_step)
