"""Lesson 11's derivation exercise: the target-attention gradient with respect to the candidate.
The model answer passes; the slips a learner makes deriving it are refused with the hint."""

import pytest
import torch

from attnflex_lab.exercises import ExerciseError, check
from attnflex_lab.exercises.lesson11 import target_attention


def _weights_and_g_dot_h(history, candidate, mask, grad_u):
    _, alpha = target_attention(history, candidate, mask)
    return alpha, (history @ grad_u[..., None]).squeeze(-1)                    # (B, L) each


def _forgets_the_softmax_coupling(history, candidate, mask, grad_u):
    alpha, g_dot_h = _weights_and_g_dot_h(history, candidate, mask, grad_u)
    return ((alpha * g_dot_h)[..., None] * history).sum(1) / history.shape[-1] ** 0.5   # diag(α) only


def _forgets_the_scale(history, candidate, mask, grad_u):
    alpha, g_dot_h = _weights_and_g_dot_h(history, candidate, mask, grad_u)
    grad_s = alpha * (g_dot_h - (alpha * g_dot_h).sum(-1, keepdim=True))
    return (grad_s[..., None] * history).sum(1)                                         # 1/√d dropped


def _adds_the_direct_path(history, candidate, mask, grad_u):
    alpha, g_dot_h = _weights_and_g_dot_h(history, candidate, mask, grad_u)
    grad_s = alpha * (g_dot_h - (alpha * g_dot_h).sum(-1, keepdim=True))
    return (grad_s[..., None] * history).sum(1) / history.shape[-1] ** 0.5 + grad_u  # as if u = ... + c


@pytest.mark.parametrize("wrong", [_forgets_the_softmax_coupling, _forgets_the_scale, _adds_the_direct_path])
def test_a_slip_in_the_derivation_is_refused_with_the_hint(wrong):
    with pytest.raises(ExerciseError, match=r"11.candidate_gradient: not yet right[\s\S]*entries differ[\s\S]*Hint"):
        check("11.candidate_gradient", wrong)


def test_the_model_answer_passes_and_autograd_is_refused():
    from attnflex_lab.exercises import get

    assert check("11.candidate_gradient", get("11.candidate_gradient").solution).status == "correct"

    def by_autograd(history, candidate, mask, grad_u):
        c = candidate.clone().requires_grad_()
        return torch.autograd.grad(target_attention(history, c, mask)[0], c, grad_u)[0]
    with pytest.raises(ExerciseError, match="autograd is off"):
        check("11.candidate_gradient", by_autograd)
