"""Setting B variants (right/wrong feedback, criterion switches): the streams, their Bayes observers
against brute-force enumeration, and the excess-error metric."""

import math

import numpy as np
import pytest
import torch

from attnflex_lab.elasticity import metrics as M
from attnflex_lab.elasticity.bayes import bayes_observer
from attnflex_lab.elasticity.variants import (
    FEEDBACK_KINDS,
    SWITCH_KINDS,
    ChoiceStream,
    ObserverChooser,
    VariantConfig,
    brute_force_variant,
    choice_stream,
    variant_observer,
)

VARIANTS = [VariantConfig(feedback=f, switch=s, hazard=0.2, criterion=2) for f in FEEDBACK_KINDS for s in SWITCH_KINDS]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v.feedback}-{v.switch}")
def test_variant_observer_matches_brute_force_on_longer_streams(variant):
    # 7 trials with criterion 2: room for a switch and another run of right choices after it
    s = choice_stream(4, 7, variant, chooser=ObserverChooser(variant, 4, 0.2), gen=torch.Generator().manual_seed(5))
    filt = variant_observer(s).predictive
    for b in range(4):
        torch.testing.assert_close(filt[b], brute_force_variant(s, b), atol=1e-12, rtol=0)


def test_criterion_switches_come_right_after_n_correct_in_a_row():
    cfg = VariantConfig(switch="criterion", criterion=3)
    s = choice_stream(300, 40, cfg, gen=torch.Generator().manual_seed(1))
    assert torch.equal(s.answers, s.cards.gather(2, s.rules.unsqueeze(-1)).squeeze(-1))
    assert torch.equal(s.right, s.choices == s.answers)
    for b in range(300):
        streak = 0
        for t in range(39):
            streak = streak + 1 if s.right[b, t] else 0
            switched = bool(s.rules[b, t + 1] != s.rules[b, t])
            assert switched == (streak == 3), (b, t, streak)
            assert switched == bool(s.since_switch[b, t + 1] == 0)
            streak = 0 if switched else streak
    assert (s.since_switch == 0).any()


def test_right_wrong_evidence_known_answer():
    # card (0, 0, 1), the chooser picks 0, told "wrong": colour and shape (which give 0) are ruled out
    cfg = VariantConfig(feedback="right_wrong", switch="hazard", hazard=0.0)
    cards = torch.tensor([[[0, 0, 1], [2, 3, 3]]])
    s = ChoiceStream(cards, torch.tensor([[2, 2]]), torch.tensor([[1, 3]]), torch.tensor([[0, 3]]),
                     torch.tensor([[False, True]]), torch.tensor([[10**6, 10**6]]), cfg)
    obs = variant_observer(s)
    torch.testing.assert_close(obs.prior[0, 1], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    # "right" for card (0, 0, 1) chosen 0 would have left colour and shape at 1/2 each
    s.right[0, 0] = True
    torch.testing.assert_close(variant_observer(s).prior[0, 1], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))


def test_answer_feedback_with_hazard_is_the_original_observer():
    cfg = VariantConfig(feedback="answer", switch="hazard", hazard=0.1)
    s = choice_stream(50, 12, cfg, gen=torch.Generator().manual_seed(2))
    torch.testing.assert_close(variant_observer(s).prior, bayes_observer(s.cards, s.answers, 0.1).prior)


def test_observer_curves_by_variant():
    err = {}
    for feedback in FEEDBACK_KINDS:
        for switch in SWITCH_KINDS:
            cfg = VariantConfig(feedback=feedback, switch=switch, hazard=0.1, criterion=5)
            s = choice_stream(600, 40, cfg, gen=torch.Generator().manual_seed(3))
            err[feedback, switch] = M.errors_by_lag(variant_observer(s).correct, s.since_switch, 2)
    # right/wrong says less than the answer: a hazard switch takes the observer longer to find
    assert err["right_wrong", "hazard"][1] > err["answer", "hazard"][1] + 0.05, err
    # a criterion switch comes at a trial the observer sees, so it bets on one of the two other rules
    # (right >= 1/2) where after a hazard switch it still bets on the old rule
    for feedback in FEEDBACK_KINDS:
        assert err[feedback, "criterion"][0] < 0.5 < err[feedback, "hazard"][0], err


def test_variant_config_and_stream_bad_input():
    with pytest.raises(ValueError, match="feedback"):
        VariantConfig(feedback="colour")
    with pytest.raises(ValueError, match="switch"):
        VariantConfig(switch="sometimes")
    with pytest.raises(ValueError, match="criterion"):
        VariantConfig(criterion=0)
    with pytest.raises(ValueError, match="positive ints"):
        choice_stream(0, 5, VariantConfig())
    with pytest.raises(ValueError, match="epsilon"):
        ObserverChooser(VariantConfig(), 2, epsilon=2.0)


def test_excess_errors_by_lag_known_answer():
    since = [5, 0, 1, 2, 0, 1]
    model = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    observer = [1.0, 0.5, 1.0, 1.0, 0.0, 1.0]
    # lag 0: model errs 1.0, observer 0.75 -> 0.25; lag 1: 0.5 vs 0 -> 0.5; lag 2: 0 vs 0; lag 3: none
    ex = M.excess_errors_by_lag(model, observer, since, max_lag=3)
    np.testing.assert_allclose(ex[:3], [0.25, 0.5, 0.0])
    assert math.isnan(ex[3])
    with pytest.raises(ValueError, match="one shape"):
        M.errors_by_lag([1.0], [0, 1], 2)
