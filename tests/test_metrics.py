"""Metrics on hand-made cases whose answers are known."""

import math

import pytest
import torch

from attnflex_lab.metrics import accuracy, alignment_accuracy, attention_entropy, exact_match


def test_accuracy_from_ids_and_logits():
    labels = torch.tensor([0, 1, 2, 1])
    assert accuracy(torch.tensor([0, 1, 1, 1]), labels) == 0.75
    logits = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0]])
    assert accuracy(logits, labels) == 0.75
    with pytest.raises(ValueError, match="same shape"):
        accuracy(torch.tensor([0, 1]), labels)


def test_exact_match_counts_whole_rows():
    target = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert exact_match(target.clone(), target) == 1.0
    wrong = target.clone()
    wrong[1, 2] = 0
    assert exact_match(wrong, target) == 0.5
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        exact_match(target[0], target[0])


def test_alignment_accuracy_with_tolerance_and_undefined_steps():
    weights = torch.zeros(1, 4, 6)
    weights[0, 0, 2] = 1   # true 2 -> exact
    weights[0, 1, 4] = 1   # true 3 -> off by one
    weights[0, 2, 0] = 1   # true 5 -> off by five
    weights[0, 3, 1] = 1   # undefined -> not counted
    truth = torch.tensor([[2, 3, 5, -1]])
    assert alignment_accuracy(weights, truth) == pytest.approx(1 / 3)
    assert alignment_accuracy(weights, truth, tolerance=1) == pytest.approx(2 / 3)
    assert alignment_accuracy(weights, truth, tolerance=5) == 1.0
    with pytest.raises(ValueError, match="no step has a defined"):
        alignment_accuracy(weights, torch.full((1, 4), -1))
    with pytest.raises(ValueError, match="beyond"):
        alignment_accuracy(weights, torch.tensor([[2, 3, 9, -1]]))
    with pytest.raises(ValueError, match=r"\(N, T, S\)"):
        alignment_accuracy(weights[0], truth)


def test_attention_entropy_extremes_and_zeros():
    one_hot = torch.eye(4)
    uniform = torch.full((3, 4), 0.25)
    assert attention_entropy(one_hot) == 0.0
    assert attention_entropy(uniform) == pytest.approx(math.log(4))
    assert attention_entropy(uniform, normalized=True) == pytest.approx(1.0)
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # zeros count as 0·log 0 = 0, not NaN
    assert attention_entropy(half) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="non-negative"):
        attention_entropy(torch.tensor([[1.5, -0.5]]))
    with pytest.raises(TypeError, match="floating point"):
        attention_entropy(torch.tensor([[1, 0]]))


def test_lesson04_alignment_exercise_agrees_with_the_metric_and_catches_mistakes():
    from attnflex_lab.exercises import ExerciseError, check, get

    ex = get("04.alignment_accuracy")
    weights, truth, tol = ex.make_inputs(torch.Generator().manual_seed(1))
    assert ex.solution(weights, truth, tol).item() == pytest.approx(
        alignment_accuracy(weights, truth, tolerance=tol))

    def counts_undefined(weights, truth, tolerance):  # forgets to skip the -1 steps
        return ((weights.argmax(-1) - truth).abs() <= tolerance).float().mean()

    with pytest.raises(ExerciseError, match="average only where truth >= 0"):
        check("04.alignment_accuracy", counts_undefined)
