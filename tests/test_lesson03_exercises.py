"""Lesson 03 exercises: the model answers pass; plausible slips in the derivation are refused."""

import pytest
import torch

from attnflex_lab.exercises import ExerciseError, check, get


def _forgets_the_pooled_logit(e, w_a, W, k):
    alpha = torch.softmax(e @ w_a, -1)                       # α_t ℓ_t: the softmax's diagonal only
    return alpha * (e @ W[k].unsqueeze(-1)).squeeze(-1)


def _forgets_alpha(e, w_a, W, k):
    alpha = torch.softmax(e @ w_a, -1)
    own = (e @ W[k].unsqueeze(-1)).squeeze(-1)
    return own - (alpha * own).sum(-1, keepdim=True)         # ℓ_t − W_k·c, not weighted by α_t


def _uses_class_zero(e, w_a, W, k):
    return get("03.pooled_logit_grad").solution(e, w_a, W, torch.zeros_like(k))


@pytest.mark.parametrize("wrong", [_forgets_the_pooled_logit, _forgets_alpha, _uses_class_zero])
def test_the_pooled_logit_gradient_refuses_plausible_slips(wrong):
    with pytest.raises(ExerciseError, match="(?s)03.pooled_logit_grad: not yet right.*entries differ"):
        check("03.pooled_logit_grad", wrong)


def test_the_pooled_logit_gradient_is_autograds():
    e, w_a, W, k = get("03.pooled_logit_grad").make_inputs(torch.Generator().manual_seed(1))
    scores = (e @ w_a).requires_grad_()
    logits = (torch.softmax(scores, -1).unsqueeze(-1) * e).sum(1) @ W.T        # (B, C)
    (grad,) = torch.autograd.grad(logits.gather(1, k[:, None]).sum(), scores)
    torch.testing.assert_close(get("03.pooled_logit_grad").solution(e, w_a, W, k), grad)


def test_a_transposed_confusion_matrix_is_refused():
    solution = get("03.confusion_counts").solution
    with pytest.raises(ExerciseError, match="entries differ"):
        check("03.confusion_counts", lambda y, p, n: solution(y, p, n).T)
