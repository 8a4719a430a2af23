"""Lesson 02 exercises: each model answer passes its check; plausible slips fail with a message."""

import pytest
import torch

from attnflex_lab.exercises import ExerciseError, all_exercises, check
from tests.exercise_messages import assert_explained

LESSON02 = ["02.softmax_backward", "02.attention_dv", "02.attention_dq"]


def test_lesson02_exercises_are_registered():
    ids = {ex.id for ex in all_exercises()}
    assert set(LESSON02) <= ids


def _forgets_the_subtraction(probs, grad_probs):
    return probs * grad_probs                      # only the diagonal of the Jacobian


def _sums_the_whole_tensor(probs, grad_probs):
    return probs * (grad_probs - (grad_probs * probs).sum())  # ⟨g, p⟩ over all rows at once


def _averages_over_queries(weights, grad_out):
    return weights.mT @ grad_out / weights.shape[-2]  # mean over t, not the sum: right shape only


def _forgets_the_scale(q, k, v, grad_out, scale):
    weights = (scale * q @ k.transpose(-2, -1)).softmax(-1)
    grad_p = grad_out @ v.transpose(-2, -1)
    grad_s = weights * (grad_p - (grad_p * weights).sum(-1, keepdim=True))
    return grad_s @ k


def _forgets_the_rowsum(q, k, v, grad_out, scale):
    weights = (scale * q @ k.transpose(-2, -1)).softmax(-1)
    return scale * (weights * (grad_out @ v.transpose(-2, -1))) @ k


@pytest.mark.parametrize("exercise_id,wrong,expected_words", [
    ("02.softmax_backward", _forgets_the_subtraction, ["entries differ", "worst at index",
                                                        "Hint", "⟨g, p⟩"]),
    ("02.softmax_backward", _sums_the_whole_tensor, ["entries differ", "keepdim"]),
    ("02.attention_dv", _averages_over_queries, ["entries differ", "expected"]),
    ("02.attention_dq", _forgets_the_scale, ["entries differ", "scale"]),
    ("02.attention_dq", _forgets_the_rowsum, ["entries differ", "rowsum"]),
])
def test_plausible_wrong_answers_are_explained(exercise_id, wrong, expected_words):
    assert_explained(exercise_id, wrong, expected_words)


def test_a_missing_transpose_is_reported_as_a_shape():
    def no_transpose(weights, grad_out):
        return weights[..., :, :1] * grad_out.sum(-2, keepdim=True)  # (B, T, Dv): V's shape lost
    with pytest.raises(ExerciseError, match=r"has shape \(2, 5, 3\), expected \(2, 7, 3\)"):
        check("02.attention_dv", no_transpose)
    with pytest.raises(ExerciseError, match=r"expected \(2, 7, 3\)"):
        check("02.attention_dv", lambda w, g: torch.zeros_like(g))
