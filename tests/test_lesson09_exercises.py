"""Lesson 09 exercises: each model answer passes its check; plausible slips fail with a message."""

import pytest
import torch

from attnflex_lab.exercises import get
from tests.exercise_messages import assert_explained


def _one_norm_for_the_batch(delta, eps):
    return delta * min(1.0, eps / float(delta.norm()))              # the whole batch as one vector


def _clamps_each_entry(delta, eps):
    return delta.clamp(-eps, eps)                                    # the L∞ ball's projection, not L2's


def _divides_by_a_zero_norm(delta, eps):
    norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
    return torch.where(norms > eps, delta * eps / norms, delta / norms * norms)   # 0/0 on the zero row


def _ece_of_all_predictions_at_once(probs, labels, n_bins):
    conf, pred = probs.max(-1)
    return ((pred == labels).to(probs.dtype).mean() - conf.mean()).abs()          # one bin only


@pytest.mark.parametrize("exercise_id,wrong,expected_words", [
    ("09.project_l2", _one_norm_for_the_batch, ["entries differ", "One norm per example"]),
    ("09.project_l2", _clamps_each_entry, ["entries differ", "ray"]),
    ("09.project_l2", _divides_by_a_zero_norm, ["NaN", "stay 0"]),
    ("09.expected_calibration_error", _ece_of_all_predictions_at_once, ["entries differ", "n_b / N"]),
])
def test_plausible_wrong_answers_are_explained(exercise_id, wrong, expected_words):
    assert_explained(exercise_id, wrong, expected_words)


def test_the_projection_inputs_cover_both_cases_and_the_zero_perturbation():
    """Every trial has a zero row, rows inside the ball and rows outside it: a slip in either case shows."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        delta, eps = get("09.project_l2").make_inputs(gen)
        lengths = delta.flatten(1).norm(dim=1)
        assert lengths[0] == 0 and (lengths[1:] < eps).any() and (lengths > eps).any()
