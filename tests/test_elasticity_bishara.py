"""The attentional-updating model (Bishara et al. 2010): known answers, and its four parameters recovered
from simulated choices by maximum likelihood, with a profile-likelihood interval around the truth."""

import pytest
import torch

from attnflex_lab.elasticity.bishara import (
    CHI2_1_95,
    BisharaChooser,
    BisharaParams,
    choice_probs,
    fit_bishara,
    negative_log_likelihood,
    profile_deviance,
    replay,
)
from attnflex_lab.elasticity.variants import VariantConfig, choice_stream, variant_observer

WCST = VariantConfig(feedback="right_wrong", switch="criterion", criterion=6)


def test_full_rates_and_focus_one_give_the_bayes_observer_without_switches():
    cfg = VariantConfig(feedback="right_wrong", switch="hazard", hazard=0.0)
    s = choice_stream(200, 12, cfg, gen=torch.Generator().manual_seed(8))
    attn, _ = replay(s.cards, s.choices, s.right, BisharaParams(r=1.0, p=1.0, d=1.0, f=1.0))
    torch.testing.assert_close(attn, variant_observer(s).prior)


def test_choice_rule_and_one_update_known_answers():
    a = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    card = torch.tensor([[0, 0, 1]])
    # key 0 matches colour and shape (score 0.75), key 1 number (0.25), keys 2 and 3 nothing
    probs = choice_probs(a, card, d=2.0)
    expected = torch.tensor([[0.9, 0.1, 0.0, 0.0]], dtype=torch.float64) * (1 - 1e-3) + 1e-3 / 4
    torch.testing.assert_close(probs, expected)
    # chose key 0 and was told "wrong": punishment points to number only; p = 0.5 moves half way there
    s = choice_stream(1, 1, WCST)
    s.cards[:], s.choices[:], s.right[:] = card[:, None], 0, False
    attn, _ = replay(torch.cat([s.cards, s.cards], 1), torch.zeros(1, 2, dtype=torch.long),
                     torch.zeros(1, 2, dtype=torch.bool), BisharaParams(r=0.9, p=0.5, d=1.0, f=1.0))
    torch.testing.assert_close(attn[0, 1], torch.tensor([1 / 6, 1 / 6, 2 / 3], dtype=torch.float64))


def _simulated(n, length, seed=0):
    true = BisharaParams(r=0.3, p=0.8, d=4.0, f=1.5)
    stream = choice_stream(n, length, WCST, chooser=BisharaChooser(true, n), gen=torch.Generator().manual_seed(seed))
    return true, stream


def test_fit_recovers_known_parameters_from_simulated_choices(one_torch_thread):
    true, s = _simulated(80, 20)
    fit = fit_bishara(s.cards, s.choices, s.right, starts=((0.5, 0.5, 2.0, 0.5),), profile=())
    got = fit.params
    assert abs(got.r - 0.3) < 0.1 and abs(got.p - 0.8) < 0.1 and abs(got.d - 4.0) < 1.5 and abs(got.f - 1.5) < 0.5, got
    # the estimate is a minimum of −log L: the truth is no better
    assert fit.nll <= negative_log_likelihood(s.cards, s.choices, s.right, true).item() + 1e-6
    # the profile likelihood keeps the true p inside its 95 % region and rules out p = 0.5
    theta = got.vector()
    data = (s.cards, s.choices, s.right)
    assert profile_deviance(data, theta, fit.nll, 1, 0.8) < CHI2_1_95 < profile_deviance(data, theta, fit.nll, 1, 0.5)


@pytest.mark.long
def test_profile_intervals_cover_the_truth_and_are_narrow(one_torch_thread):
    true, s = _simulated(100, 40, seed=1)
    fit = fit_bishara(s.cards, s.choices, s.right)
    for name, width in (("r", 0.15), ("p", 0.15), ("d", 3.0), ("f", 0.6)):
        low, high = fit.intervals[name]
        assert low < getattr(true, name) < high and high - low < width, (name, fit.intervals)


def test_bad_input():
    with pytest.raises(ValueError, match="r must lie"):
        BisharaParams(r=1.5)
    s = choice_stream(2, 4, WCST)
    with pytest.raises(TypeError, match="bool"):
        replay(s.cards, s.choices, s.right.long(), BisharaParams())
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        replay(s.cards, s.choices[:, :3], s.right, BisharaParams())
