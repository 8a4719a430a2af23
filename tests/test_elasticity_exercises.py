"""Lesson 08 exercises: the model answers agree with the package's metrics, and the usual mistakes
are caught with a message that says what is wrong."""

import pytest
import torch

from attnflex_lab.elasticity import metrics as M
from attnflex_lab.exercises import ExerciseError, check, get


def test_model_answers_agree_with_the_metrics():
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        acc, s, w = get("08.switch_cost").make_inputs(gen)
        assert float(get("08.switch_cost").solution(acc, s, w)) == pytest.approx(M.switch_cost(acc.numpy(), s, w))
        p, q = get("08.attention_shift").make_inputs(gen)
        assert float(get("08.attention_shift").solution(p, q)) == pytest.approx(M.attention_shift(p.numpy(), q.numpy()))


def test_switch_cost_with_the_sign_flipped_is_caught():
    with pytest.raises(ExerciseError, match="Hint: the step at switch_step"):
        check("08.switch_cost", lambda a, s, w: a[s:s + w].mean() - a[s - w:s].mean())


def test_switch_cost_off_by_one_is_caught():
    with pytest.raises(ExerciseError, match="entries differ"):
        check("08.switch_cost", lambda a, s, w: a[s - w - 1:s - 1].mean() - a[s:s + w].mean())


def test_attention_shift_in_nats_is_caught():
    def js_nats(p, q):
        h = lambda x: -torch.special.xlogy(x, x).sum(-1)  # noqa: E731  natural log: the wrong unit
        return (h((p + q) / 2) - (h(p) + h(q)) / 2).mean()

    with pytest.raises(ExerciseError, match="log2"):
        check("08.attention_shift", js_nats)


def test_attention_shift_with_nan_on_one_hot_rows_is_caught():
    def naive(p, q):
        h = lambda x: -(x * torch.log2(x)).sum(-1)  # noqa: E731  0·log 0 = NaN
        return (h((p + q) / 2) - (h(p) + h(q)) / 2).mean()

    with pytest.raises(ExerciseError, match="NaN"):
        check("08.attention_shift", naive)
