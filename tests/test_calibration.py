"""ECE and reliability bins, and attention-on-target (attnflex_lab.metrics), against hand-computed cases."""

import math

import pytest
import torch

from attnflex_lab.metrics import attention_on_target, expected_calibration_error, reliability_bins

# Four predictions over three classes, two bins [0, .5] and (.5, 1]:
#   conf .4 wrong  -> bin 0: accuracy 0,   confidence .4
#   conf .9 right, .8 wrong, .6 right -> bin 1: accuracy 2/3, confidence (.9 + .8 + .6) / 3 = .7667
# ECE = 1/4 · |0 − .4| + 3/4 · |2/3 − .7667| = .1 + .075 = .175
PROBS = torch.tensor([[0.3, 0.4, 0.3], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
LABELS = torch.tensor([0, 0, 1, 2])


def test_ece_matches_the_hand_computed_case():
    assert expected_calibration_error(PROBS, LABELS, n_bins=2) == pytest.approx(0.175, abs=1e-6)  # float32


def test_reliability_bins_hold_the_hand_computed_values():
    bins = reliability_bins(PROBS, LABELS, n_bins=2)
    assert bins["count"] == [1, 3]
    assert bins["accuracy"] == pytest.approx([0.0, 2 / 3])
    assert bins["confidence"] == pytest.approx([0.4, 2.3 / 3])
    assert bins["edges"] == pytest.approx([0.0, 0.5, 1.0])


def test_empty_bins_are_nan_and_do_not_count():
    bins = reliability_bins(PROBS, LABELS, n_bins=10)
    assert sum(bins["count"]) == 4
    assert math.isnan(bins["accuracy"][0]) and bins["count"][0] == 0
    assert expected_calibration_error(PROBS, LABELS, n_bins=10) >= 0


def test_a_calibrated_classifier_has_ece_near_zero_and_an_overconfident_one_does_not():
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    confidence = 0.5 + 0.5 * torch.rand(n, generator=gen)              # (N,) in [.5, 1)
    correct = torch.rand(n, generator=gen) < confidence                # right with probability = confidence
    probs = torch.stack([confidence, 1 - confidence], dim=1)           # (N, 2): always predicts class 0
    labels = torch.where(correct, 0, 1)
    assert expected_calibration_error(probs, labels) < 0.02
    sharp = torch.stack([torch.full((n,), 0.99), torch.full((n,), 0.01)], dim=1)  # same hits, 99 % sure
    assert expected_calibration_error(sharp, labels) > 0.15


def test_calibration_refuses_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="softmax"):
        expected_calibration_error(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(3,\)"):
        expected_calibration_error(PROBS, LABELS[:3])
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(PROBS, LABELS, n_bins=0)


def test_attention_on_target_is_the_mass_at_the_true_position():
    weights = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]])       # (N=1, T=2, S=3)
    assert attention_on_target(weights, torch.tensor([[0, 2]])) == pytest.approx(0.75)
    assert attention_on_target(weights, torch.tensor([[1, -1]])) == pytest.approx(0.2)  # -1 not counted
    mask = torch.tensor([[[True, True, False], [False, False, False]]])  # step 1: no right position
    assert attention_on_target(weights, mask) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="same shape"):
        attention_on_target(weights, mask[..., :2])
    with pytest.raises(ValueError, match="beyond"):
        attention_on_target(weights, torch.tensor([[0, 3]]))
    with pytest.raises(ValueError, match=r"\(1, 2, 3\)"):
        attention_on_target(weights, torch.tensor([0, 2]))


def test_lesson09_exercise_answer_equals_the_metric():
    from attnflex_lab.exercises.lesson09 import _calibration_inputs
    from attnflex_lab.exercises.lesson09 import expected_calibration_error as exercise_ece

    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        probs, labels, n_bins = _calibration_inputs(gen)
        assert float(exercise_ece(probs, labels, n_bins)) == pytest.approx(
            expected_calibration_error(probs, labels, n_bins=n_bins), abs=1e-12)


def test_a_confidence_on_a_bin_edge_falls_in_the_lower_bin():
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)   # bins (0, .5], (.5, 1]
    bins = reliability_bins(probs, torch.tensor([0, 0]), n_bins=2)
    assert bins["count"] == [1, 1]
    assert bins["confidence"] == pytest.approx([0.5, 0.75])


def test_proper_scores_match_the_hand_computed_case():
    from attnflex_lab.metrics import brier_score, negative_log_likelihood

    # p(label) = .3, .9, .1, .6
    nll = -(math.log(0.3) + math.log(0.9) + math.log(0.1) + math.log(0.6)) / 4
    assert negative_log_likelihood(PROBS, LABELS) == pytest.approx(nll, rel=1e-6)
    squares = [0.7**2 + 0.4**2 + 0.3**2, 0.1**2 + 0.05**2 + 0.05**2, 0.8**2 + 0.9**2 + 0.1**2,
               0.2**2 + 0.2**2 + 0.4**2]
    assert brier_score(PROBS, LABELS) == pytest.approx(sum(squares) / 4, rel=1e-6)
    with pytest.raises(ValueError, match="softmax"):
        brier_score(torch.randn(4, 3), LABELS)


def test_bootstrap_interval_brackets_the_score_and_narrows_with_more_data():
    from attnflex_lab.metrics import bootstrap_interval, brier_score

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1000, 5, generator=gen)
    probs, labels = logits.softmax(-1), torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1)
    small = bootstrap_interval(brier_score, probs[:100], labels[:100], resamples=200)
    large = bootstrap_interval(brier_score, probs, labels, resamples=200)
    assert small[0] < brier_score(probs[:100], labels[:100]) < small[1]
    assert large[0] < brier_score(probs, labels) < large[1]
    assert large[1] - large[0] < 0.5 * (small[1] - small[0])        # width ~ 1/√N: 3.2× narrower here
    per_example = ((probs.double() - torch.nn.functional.one_hot(labels, 5)) ** 2).sum(1)   # (N,)
    normal_width = 2 * 1.645 * per_example.std().item() / len(labels) ** 0.5    # a 90 % normal interval
    assert large[1] - large[0] == pytest.approx(normal_width, rel=0.25)


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    from attnflex_lab.metrics import fit_temperature

    gen = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(4000, 4, generator=gen)
    labels = torch.multinomial((logits / 2.0).softmax(-1), 1, generator=gen).squeeze(1)   # true T = 2
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)
    assert fit_temperature(logits / 2.0, labels) == pytest.approx(1.0, rel=0.1)
