"""Lesson 01 exercises: each model answer passes its check; plausible wrong answers fail clearly."""

import math

import pytest
import torch

from attnflex_lab import functional
from attnflex_lab.exercises import ExerciseError, all_exercises, check, get

LESSON01 = ["01.scaled_dot_scores", "01.masked_softmax", "01.attention_pool",
            "01.nadaraya_watson"]


def test_lesson01_exercises_are_registered():
    ids = {ex.id for ex in all_exercises()}
    assert set(LESSON01) <= ids


@pytest.mark.parametrize("exercise_id", LESSON01)
def test_model_answers_agree_with_reference_math(exercise_id):
    """The lesson's answers and attnflex_lab.functional compute the same thing."""
    gen = torch.Generator().manual_seed(1)
    args = get(exercise_id).make_inputs(gen)
    got = get(exercise_id).solution(*args)
    if exercise_id == "01.scaled_dot_scores":
        expected = functional.scaled_dot_scores(*args)
    elif exercise_id == "01.masked_softmax":
        expected = functional.masked_softmax(*args)
    elif exercise_id == "01.attention_pool":
        expected = functional.attention_pool(*args)
    else:
        expected = functional.nadaraya_watson(*args)[0]
    for g, e in zip(got if isinstance(got, tuple) else (got,),
                    expected if isinstance(expected, tuple) else (expected,), strict=True):
        torch.testing.assert_close(g, e)


def test_masked_softmax_inputs_always_hold_a_fully_masked_row():
    scores, mask = get("01.masked_softmax").make_inputs(torch.Generator().manual_seed(0))
    assert (~mask).all(dim=-1).any()


def _unscaled(q, k):
    return q @ k.transpose(-2, -1)  # forgot the 1/√d


def _divided_by_d(q, k):
    return q @ k.transpose(-2, -1) / q.shape[-1]  # d instead of √d


def _softmax_with_nan_rows(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def _softmax_with_big_negative(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)  # fully masked row: uniform


def _pool_over_features(e, w_a):
    scores = e @ w_a
    alpha = torch.softmax(scores, dim=0)  # softmax over the batch, not over T
    return (alpha.unsqueeze(-1) * e).sum(-2), alpha


def _pool_without_weights(e, w_a):
    alpha = torch.softmax(e @ w_a, dim=-1)
    return e.mean(-2), alpha  # plain average: ignores alpha


def _kernel_without_square(x_query, x_keys, y_values, bandwidth):
    diff = x_query[:, None] - x_keys[None, :]
    weights = torch.softmax(-diff**2 / (2 * bandwidth), dim=-1)  # h instead of h²
    return weights @ y_values


def _kernel_softmax_over_queries(x_query, x_keys, y_values, bandwidth):
    diff = x_query[:, None] - x_keys[None, :]
    weights = torch.softmax(-diff**2 / (2 * bandwidth**2), dim=0)  # normalised over queries
    return weights @ y_values


@pytest.mark.parametrize(("exercise_id", "wrong", "says"), [
    ("01.scaled_dot_scores", _unscaled, "entries differ"),
    ("01.scaled_dot_scores", _divided_by_d, "square root"),
    ("01.masked_softmax", _softmax_with_nan_rows, "NaN"),
    ("01.masked_softmax", _softmax_with_big_negative, "entries differ"),
    ("01.attention_pool", _pool_over_features, "entries differ"),
    ("01.attention_pool", _pool_without_weights, "output[0]"),
    ("01.nadaraya_watson", _kernel_without_square, "entries differ"),
    ("01.nadaraya_watson", _kernel_softmax_over_queries, "entries differ"),
])
def test_wrong_answer_fails_with_a_message(exercise_id, wrong, says):
    with pytest.raises(ExerciseError) as info:
        check(exercise_id, wrong)
    message = str(info.value)
    assert exercise_id in message and "not yet right" in message
    assert says in message


def test_wrong_shape_is_named():
    def keeps_batch_wrong(q, k):
        return (q[0] @ k[0].T) / math.sqrt(q.shape[-1])  # drops the batch dim

    with pytest.raises(ExerciseError, match="has shape"):
        check("01.scaled_dot_scores", keeps_batch_wrong)
