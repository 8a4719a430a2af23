"""Lesson 11's model selection and intervals (no training): the validation split's choices
(``KeepBest``, the AR's ridge), the block bootstrap behind every "on par", sum pooling's control."""

import types

import numpy as np
import pytest
import torch

from attnflex_lab.models.din import ClickModel, DINConfig
from attnflex_lab.recipes.applications import KeepBest, bootstrap_mean_interval
from attnflex_lab.tasks import timeseries


def test_keep_best_restores_the_weights_of_the_lowest_validation_loss():
    model, keep = torch.nn.Linear(2, 1), KeepBest()
    state = types.SimpleNamespace(model=model, step=0)
    snapshots = {}
    for step, loss in ((10, 3.0), (20, 1.0), (30, 2.0)):      # the best is in the middle, not the last
        with torch.no_grad():
            model.weight.fill_(float(step))
        state.step = step
        keep.on_eval(state, {"val_loss": loss})
        snapshots[step] = model.weight.clone()
    assert keep.restore(model) == 20
    torch.testing.assert_close(model.weight, snapshots[20])
    assert not model.training
    with pytest.raises(RuntimeError, match="no evaluation"):
        KeepBest().restore(model)


def test_bootstrap_interval_holds_the_mean_and_widens_for_correlated_items():
    rng = np.random.default_rng(0)
    assert bootstrap_mean_interval(np.full(30, 0.25)) == (0.25, 0.25)
    iid = rng.normal(size=200)
    low, high = bootstrap_mean_interval(iid)
    assert low < iid.mean() < high and high - low == pytest.approx(2 * 1.645 / np.sqrt(200), rel=0.25)
    iid_blocks = np.subtract(*bootstrap_mean_interval(iid, block=20)[::-1])
    assert iid_blocks < 1.5 * (high - low)          # independent items: blocks change little (a block of
    #                                                 one item repeated would widen it √20 times)
    walk = np.cumsum(rng.normal(size=200)) / 10                              # neighbours agree
    plain = np.subtract(*bootstrap_mean_interval(walk)[::-1])
    blocks = np.subtract(*bootstrap_mean_interval(walk, block=20)[::-1])
    assert blocks > 2 * plain                                                # blocks keep the correlation
    with pytest.raises(ValueError, match="at least block=5"):
        bootstrap_mean_interval(np.ones(3), block=5)


def test_the_ar_ridge_shrinks_the_weights_but_not_the_intercept():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(80, 6, generator=gen, dtype=torch.float64)
    noise = 0.1 * torch.randn(80, generator=gen, dtype=torch.float64)
    target = x @ torch.arange(1.0, 7.0, dtype=torch.float64) + 3 + noise
    plain = timeseries.fit_linear_ar(x, target)
    np.testing.assert_allclose(plain, [1, 2, 3, 4, 5, 6, 3], atol=0.1)      # least squares finds w and b
    np.testing.assert_allclose(timeseries.fit_linear_ar(x, target, ridge=1e-9), plain, atol=1e-6)
    heavy = timeseries.fit_linear_ar(x, target, ridge=1e9)
    assert np.abs(heavy[:-1]).max() < 1e-4 and heavy[-1] == pytest.approx(float(target.mean()), abs=1e-3)
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        timeseries.fit_linear_ar(x, target, ridge=-1.0)


def test_sum_pooling_has_no_candidate_dependent_weights():
    torch.manual_seed(0)
    history = torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]])
    model = ClickModel(DINConfig(num_items=20, pooling="sum"))
    _, alpha = model(history, torch.tensor([9, 10]))
    torch.testing.assert_close(alpha, (history > 0).float())                 # 1 per real item, 0 on padding
    torch.testing.assert_close(model(history, torch.tensor([11, 12]))[1], alpha)
