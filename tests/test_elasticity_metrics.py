"""Switching metrics: known answers on hand-made curves, and hypothesis properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflex_lab.elasticity import metrics as M

# --- known answers ------------------------------------------------------------------------------


def test_switch_cost_known_answer():
    acc = [1.0] * 10 + [0.2, 0.4, 0.6, 0.8] + [1.0] * 6
    # before: mean of the 4 steps before 10 = 1.0; after: mean(0.2, 0.4, 0.6, 0.8) = 0.5
    assert M.switch_cost(acc, 10, 4) == pytest.approx(0.5)
    assert M.switch_cost(acc, 10, 1) == pytest.approx(0.8)


def test_switch_cost_needs_room_for_its_windows():
    with pytest.raises(ValueError, match="need 5 steps before"):
        M.switch_cost([1.0] * 8, 3, 5)
    with pytest.raises(ValueError, match="window"):
        M.switch_cost([1.0] * 8, 3, 0)
    with pytest.raises(ValueError, match="1-D"):
        M.switch_cost([[1.0]], 0, 1)


def test_recovery_steps_known_answers():
    acc = [0.9] * 5 + [0.0, 0.3, 0.86, 0.9, 0.9]
    # pre = 0.9, target 0.95 × 0.9 = 0.855: the first step at or above it is offset 2
    assert M.recovery_steps(acc, 5, level=0.95, window=1) == 2
    # never recovers
    assert M.recovery_steps([1.0] * 5 + [0.5] * 5, 5, level=0.95, window=1) == math.inf
    # no dip at all: 0
    assert M.recovery_steps([1.0] * 10, 5, level=0.95, window=3) == 0


def test_recovery_window_only_counts_the_new_phase():
    # window 3 straddling the switch would average in the old phase's 1.0s; it must not
    acc = [1.0] * 5 + [0.0, 1.0, 1.0, 1.0]
    # new-phase windows: [0] 0, [0, 1] 0.5, [0, 1, 1] 0.67 -> offset 2; straddling would give 0.67 at 0
    assert M.recovery_steps(acc, 5, level=0.6, window=3) == 2


@given(d=st.integers(0, 30), pre=st.integers(1, 20), post=st.integers(1, 20), w=st.integers(1, 5))
def test_recovery_on_a_step_function_is_exact(d, pre, post, w):
    acc = np.r_[np.ones(max(pre, w)), np.zeros(d), np.ones(post + w)]
    expected = 0 if d == 0 else d + w - 1
    assert M.recovery_steps(acc, max(pre, w), level=1.0, window=w) == expected


def test_perseverative_rate_known_answer():
    choice = [0, 1, 1, 2, 3, 1]
    old = [1, 1, 1, 1, 1, 1]
    new = [0, 0, 0, 0, 0, 1]
    # errors at 1..4 (4 errors); of those, choices equal to old at 1, 2: rate 2/4
    assert M.perseverative_rate(choice, old, new) == pytest.approx(0.5)
    assert math.isnan(M.perseverative_rate([0, 1], [1, 0], [0, 1]))  # no errors: undefined
    with pytest.raises(ValueError, match="one shape"):
        M.perseverative_rate([0, 1], [1], [0, 1])


def test_retention_and_savings_known_answers():
    assert M.retention([1, 0, 1, 1]) == pytest.approx(0.75)
    assert M.savings(100, 25) == pytest.approx(0.75)
    assert M.savings(100, 150) == pytest.approx(-0.5)  # slower the second time: negative savings
    with pytest.raises(ValueError, match="first_steps"):
        M.savings(0, 5)
    with pytest.raises(ValueError, match="at least one"):
        M.retention([])


def test_attention_shift_known_answers():
    assert M.attention_shift([1, 0], [0, 1]) == pytest.approx(1.0)       # disjoint: 1 bit
    assert M.attention_shift([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # JS([1, 0], [0.5, 0.5]) = H(0.75, 0.25) − (0 + 1)/2 = 0.811278 − 0.5
    assert M.attention_shift([1, 0], [0.5, 0.5]) == pytest.approx(0.311278, abs=1e-6)
    # rows are averaged
    assert M.attention_shift([[1, 0], [1, 0]], [[0, 1], [1, 0]]) == pytest.approx(0.5)


def test_attention_shift_rejects_non_distributions():
    with pytest.raises(ValueError, match="summing to 1"):
        M.attention_shift([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        M.attention_shift([1, 0], [1, 0, 0])


def test_attention_on_target_and_entropy():
    w = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    assert M.attention_on_target(w, [0, 2]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="0..2"):
        M.attention_on_target(w, [0, 3])
    assert M.entropy([0.25] * 4) == pytest.approx(2.0)
    assert M.entropy([1.0, 0.0]) == pytest.approx(0.0)


def test_mean_ci_known_answer():
    mean, half = M.mean_ci([1.0, 2.0, 3.0])
    # s = 1, n = 3, t_{2} = 4.3027: half-width 4.3027 / √3
    assert mean == pytest.approx(2.0) and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert math.isnan(M.mean_ci([1.0])[1])


def test_moving_average_known_answer():
    np.testing.assert_allclose(M.moving_average([0, 1, 1, 0], 2), [0, 0.5, 1, 0.5])


# --- properties ---------------------------------------------------------------------------------

_dist = st.integers(2, 6).flatmap(
    lambda k: st.tuples(*[st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k).filter(lambda v: sum(v) > 1e-3)
                          for _ in range(2)]))


def _normalise(v):
    v = np.asarray(v, dtype=float)
    return v / v.sum()


@settings(max_examples=200, deadline=None)
@given(_dist)
def test_js_is_symmetric_bounded_and_zero_only_when_equal(pair):
    p, q = (_normalise(v) for v in pair)
    js = M.attention_shift(p, q)
    assert js == pytest.approx(M.attention_shift(q, p), abs=1e-12)
    assert 0.0 <= js <= 1.0
    assert M.attention_shift(p, p) == pytest.approx(0.0, abs=1e-12)
    if np.abs(p - q).max() > 1e-3:
        assert js > 0.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=4, max_size=40), st.integers(1, 3))
def test_switch_cost_of_a_flat_curve_is_zero_and_antisymmetric_under_reversal(acc, w):
    flat = [0.7] * 10
    assert M.switch_cost(flat, 5, min(w, 5)) == pytest.approx(0.0)
    s = len(acc) // 2
    w = min(w, s, len(acc) - s)
    if len(acc) == 2 * s:  # reversing the curve swaps "before" and "after"
        assert M.switch_cost(acc[::-1], s, w) == pytest.approx(-M.switch_cost(acc, s, w))


def test_set_loss_rate_known_answers():
    correct = [1, 1, 1, 0, 1, 1, 1, 1, 0]
    # streaks before each trial: 0 1 2 3 0 1 2 3 4 -> eligible t = 3 (error), 7 (right), 8 (error)
    assert M.set_loss_rate(correct, list(range(9))) == pytest.approx(2 / 3)
    # a switch at t = 7 restarts the streak: only t = 3 is eligible
    assert M.set_loss_rate(correct, [0, 1, 2, 3, 4, 5, 6, 0, 1]) == 1.0
    assert math.isnan(M.set_loss_rate([1, 1, 0], [0, 1, 2]))
    with pytest.raises(ValueError, match="one shape"):
        M.set_loss_rate([1, 0], [0, 1, 2])


def test_perseverative_errors_start_after_the_first_negative_feedback():
    # one trial per step: old answer 1, new answer 0
    choice = [1, 1, 2, 1, 0, 1, 0]
    old, new = [1] * 7, [0] * 7
    # first error at step 0: counted steps 1..3 -> choices 1, 2, 1: 2 old-rule errors of 3 errors
    assert M.perseverative_errors(choice, old, new, window=3) == (2, pytest.approx(2 / 3))
    # right at first: the first negative feedback is at step 2, so steps 3..4 count (1 old, 0 right)
    count, rate = M.perseverative_errors([0, 0, 1, 1, 0, 1], [1] * 6, [0] * 6, window=2)
    assert (count, rate) == (1, 1.0)
    # the window is cut at the end of what was recorded
    assert M.perseverative_errors([1, 1], [1, 1], [0, 0], window=5)[0] == 1


def test_perseverative_errors_on_batches_and_without_errors():
    # (steps, batch): step 0 all right, step 1 has one error (negative feedback), steps 2..3 count
    choice = np.array([[0, 0], [1, 0], [1, 1], [2, 0]])
    old, new = np.ones((4, 2), int), np.zeros((4, 2), int)
    # counted: [1, 1] (2 old-rule errors) and [2, 0] (1 other error): 2 of 3
    assert M.perseverative_errors(choice, old, new, window=2) == (2, pytest.approx(2 / 3))
    count, rate = M.perseverative_errors(np.zeros((3, 2), int), old[:3], new[:3], window=2)
    assert count == 0 and math.isnan(rate)           # no negative feedback: nothing is perseverative
    with pytest.raises(ValueError, match="one shape"):
        M.perseverative_errors([0, 1], [1], [0, 1], window=2)
    with pytest.raises(ValueError, match="window"):
        M.perseverative_errors([0, 1], [1, 1], [0, 1], window=0)
