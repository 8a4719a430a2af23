"""Nadaraya–Watson bandwidth explorer (lesson 01), driven without a browser."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.functional import nadaraya_watson
from attnflex_lab.viz.kernel import explore_bandwidth, leave_one_out_mse
from tests.widgets import find_widget


def _data(n=40):
    gen = torch.Generator().manual_seed(0)
    x = torch.sort(torch.rand(n, generator=gen) * 5).values
    y = torch.sin(2 * x) + 0.3 * torch.randn(n, generator=gen)
    x_test = torch.linspace(0, 5, 50)
    return x, y, x_test, torch.sin(2 * x_test)


def test_leave_one_out_matches_a_loop_over_points():
    x, y, _, _ = _data(12)
    by_loop = []
    for j in range(12):
        others = torch.arange(12) != j
        pred, _ = nadaraya_watson(x[j:j + 1], x[others], y[others], bandwidth=0.3)
        by_loop.append((pred[0] - y[j]) ** 2)
    assert leave_one_out_mse(x, y, 0.3) == pytest.approx(torch.stack(by_loop).mean().item(), rel=1e-5)


def test_leave_one_out_rejects_bad_input():
    x, y, _, _ = _data(5)
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        leave_one_out_mse(x, y, 0.0)
    with pytest.raises(ValueError, match=r"N >= 2, got \(5,\) and \(4,\)"):
        leave_one_out_mse(x, y[:4], 0.3)


def _fit_line(fig):
    return next(line for line in fig.axes[0].lines if line.get_label() == "Nadaraya–Watson")


def test_bandwidth_slider_redraws_the_fit_and_moves_the_marker():
    x, y, x_test, y_test = _data()
    box = explore_bandwidth(x, y, x_test, y_test, bandwidth=0.2)
    slider = find_widget(box, "bandwidth h")
    assert slider is not None
    before = np.asarray(_fit_line(plt.figure(plt.get_fignums()[-1])).get_ydata()).copy()
    slider.value = 3.0
    fig = plt.figure(plt.get_fignums()[-1])
    after = np.asarray(_fit_line(fig).get_ydata())
    expected, _ = nadaraya_watson(x_test, x, y, bandwidth=slider.value)
    np.testing.assert_allclose(after, expected.numpy(), rtol=1e-6)
    assert not np.allclose(before, after)
    assert after.std() < before.std()                                  # a wide kernel flattens the fit
    marker = fig.axes[1].lines[-1]                                     # the axvline at the current h
    assert marker.get_xdata()[0] == pytest.approx(slider.value)
    loo_line = fig.axes[1].lines[0]
    np.testing.assert_allclose(loo_line.get_ydata()[0], leave_one_out_mse(x, y, loo_line.get_xdata()[0]))
