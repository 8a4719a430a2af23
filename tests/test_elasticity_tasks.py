"""Card tasks and the Bayes observer: the ground truth the lesson's measurements stand on."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflex_lab.elasticity.bayes import bayes_observer, brute_force_predictive
from attnflex_lab.elasticity.tasks import switch_batch, wcst_stream


def _matches(batch, idx, rule):
    """(B,) bool: candidate idx[b] matches the query on ``rule`` (a scalar or (B,))."""
    rows = torch.arange(len(batch))
    rule = torch.as_tensor(rule).expand(len(batch))
    return batch.candidates[rows, idx, rule] == batch.query[rows, rule]


@settings(max_examples=30, deadline=None)
@given(rule=st.integers(0, 2), step=st.integers(1, 2), k=st.integers(3, 8), seed=st.integers(0, 10**6))
def test_switch_batch_has_one_target_and_a_lure_on_the_old_rule(rule, step, k, seed):
    lure_rule = (rule + step) % 3
    b = switch_batch(64, rule, lure_rule, k=k, gen=torch.Generator().manual_seed(seed))
    assert b.candidates.shape == (64, k, 3) and b.target.shape == (64,)
    rows = torch.arange(64)
    match_rule = b.candidates[:, :, rule] == b.query[:, None, rule]            # (B, K)
    match_lure = b.candidates[:, :, lure_rule] == b.query[:, None, lure_rule]  # (B, K)
    assert (match_rule.sum(1) == 1).all(), "exactly one candidate must match on the rule"
    assert (match_lure.sum(1) == 1).all(), "exactly one candidate must match on the lure rule"
    assert match_rule[rows, b.target].all() and match_lure[rows, b.lure].all()
    assert (b.target != b.lure).all()


def test_switch_batch_first_phase_lure_rule_is_random_but_never_the_rule():
    b = switch_batch(500, 1, None, gen=torch.Generator().manual_seed(0))
    assert set(b.lure_rule.tolist()) == {0, 2}
    assert _matches(b, b.lure, b.lure_rule).all() and _matches(b, b.target, 1).all()


def test_switch_batch_target_position_is_uniform():
    b = switch_batch(4000, 0, 1, k=4, gen=torch.Generator().manual_seed(1))
    counts = torch.bincount(b.target, minlength=4).float() / 4000
    assert (counts - 0.25).abs().max() < 0.03, counts


def test_switch_batch_bad_input():
    with pytest.raises(ValueError, match="differ"):
        switch_batch(4, 1, 1)
    with pytest.raises(ValueError, match="rule index"):
        switch_batch(4, 3)
    with pytest.raises(ValueError, match="k"):
        switch_batch(4, 0, 1, k=2)


def test_wcst_stream_answers_follow_the_rule_and_switch_at_the_hazard():
    s = wcst_stream(2000, 50, 0.1, gen=torch.Generator().manual_seed(0))
    assert torch.equal(s.answers, s.cards.gather(2, s.rules.unsqueeze(-1)).squeeze(-1))
    changed = s.rules[:, 1:] != s.rules[:, :-1]
    assert abs(changed.float().mean().item() - 0.1) < 0.01
    assert torch.equal(changed, s.since_switch[:, 1:] == 0)
    with pytest.raises(ValueError, match="probability"):
        wcst_stream(2, 5, 1.5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), hazard=st.sampled_from([0.0, 0.05, 0.3, 0.9]), length=st.integers(1, 6))
def test_observer_matches_brute_force_enumeration(seed, hazard, length):
    s = wcst_stream(3, length, hazard, gen=torch.Generator().manual_seed(seed))
    filt = bayes_observer(s.cards, s.answers, hazard).predictive
    for b in range(3):
        ref = brute_force_predictive(s.cards[b], s.answers[b], hazard)
        torch.testing.assert_close(filt[b], ref, atol=1e-12, rtol=0)


def test_observer_counts_every_rule_that_fits_the_feedback():
    # card (0, 0, 1) sorted to 0 fits colour and shape but not number: the posterior splits 1/2, 1/2
    cards = torch.tensor([[[0, 0, 1], [2, 3, 3]]])
    answers = torch.tensor([[0, 2]])
    r = bayes_observer(cards, answers, hazard=0.0)
    torch.testing.assert_close(r.prior[0, 1], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    # next card (2, 3, 3): colour says 2, shape says 3 -> a tie, expected accuracy 1/2
    torch.testing.assert_close(r.predictive[0, 1], torch.tensor([0, 0, 0.5, 0.5], dtype=torch.float64))
    assert r.correct[0, 1].item() == pytest.approx(0.5)


def test_observer_is_near_perfect_five_trials_after_a_switch_and_near_chance_at_it():
    s = wcst_stream(2000, 60, 0.05, gen=torch.Generator().manual_seed(3))
    c = bayes_observer(s.cards, s.answers, 0.05).correct
    assert c[s.since_switch == 5].mean() > 0.98
    assert c[s.since_switch == 0].mean() < 0.4   # it still follows the old rule at the switch


def test_observer_bad_input():
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        bayes_observer(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="answers"):
        bayes_observer(torch.zeros(2, 5, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), 0.1)


def test_perseveration_counts_only_errors_after_the_switch_trials_feedback():
    from attnflex_lab.elasticity.context import perseveration_mask

    since = torch.tensor([[3, 0, 1, 2, 3, 4, 5, 0, 1]])
    expected = torch.tensor([[True, False, True, True, True, True, False, False, True]])
    assert torch.equal(perseveration_mask(since), expected)     # lag 0 (before any feedback) never counts
