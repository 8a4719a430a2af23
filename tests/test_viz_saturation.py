"""Softmax saturation (lesson 02): the Jacobian, its norm against d, and the explorer driven
without a browser (set the slider, check the drawn data)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.functional import softmax_jacobian
from attnflex_lab.viz.saturation import explore_saturation, saturation_curve, saturation_weights
from tests.widgets import find_widget


def test_softmax_jacobian_matches_autograd_for_a_batch():
    x = torch.randn(3, 6, dtype=torch.float64)
    jac = softmax_jacobian(torch.softmax(x, -1))                                  # (3, 6, 6)
    for row in range(3):
        expected = torch.autograd.functional.jacobian(lambda r: torch.softmax(r, -1), x[row])
        torch.testing.assert_close(jac[row], expected)
    g = torch.randn(3, 6, dtype=torch.float64)                                   # a random upstream g
    leaf = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(torch.softmax(leaf, -1), leaf, grad_outputs=g)
    torch.testing.assert_close((jac.transpose(-1, -2) @ g[..., None]).squeeze(-1), grad)


def test_softmax_jacobian_quadratic_form_is_the_variance():
    p = torch.softmax(torch.randn(7, dtype=torch.float64), -1)
    x = torch.randn(20, 7, dtype=torch.float64)
    quad = torch.einsum("mi,ij,mj->m", x, softmax_jacobian(p), x)
    torch.testing.assert_close(quad, (p * x**2).sum(-1) - (x @ p) ** 2)


def test_saturation_curve_unscaled_shrinks_and_scaled_stays_flat():
    widths = [1, 4, 16, 64, 256]
    unscaled = saturation_curve(widths, scaled=False, num_queries=100)
    scaled = saturation_curve(widths, scaled=True, num_queries=100)
    assert unscaled.shape == scaled.shape == (5,)
    torch.testing.assert_close(unscaled[0], scaled[0])                # d = 1: the scale is 1
    assert unscaled[-1] < 0.4 * scaled[-1]
    assert scaled.max() < 1.15 * scaled.min()


def test_saturation_rejects_bad_widths():
    with pytest.raises(ValueError, match="widths must be positive"):
        saturation_curve([0, 4], scaled=True)
    with pytest.raises(ValueError, match="width must be between 1 and D = 4, got 8"):
        saturation_weights(torch.randn(4), torch.randn(3, 4), 8, scaled=True)


def _latest_axes():
    return plt.figure(plt.get_fignums()[-1]).axes


def test_explorer_redraws_weights_and_jacobian_when_d_moves():
    box = explore_saturation(num_keys=6, max_log2_width=9)
    slider, scaled_box = find_widget(box, "log2 d"), find_widget(box, "scale by 1/√d")
    assert slider is not None and scaled_box is not None and scaled_box.value is False
    first = plt.get_fignums()[-1]
    before = np.asarray(_latest_axes()[1].images[0].get_array()).copy()      # J at d = 16
    slider.value = 9                                                           # d = 512, unscaled
    assert plt.get_fignums()[-1] != first                                      # a redraw happened
    bars, heat = _latest_axes()[0], _latest_axes()[1]
    after = np.asarray(heat.images[0].get_array())
    heights = np.array([patch.get_height() for patch in bars.patches])
    assert not np.allclose(before, after)
    assert np.abs(after).sum() < np.abs(before).sum()                          # saturated: J shrinks
    np.testing.assert_allclose(after, softmax_jacobian(torch.tensor(heights)).numpy(), atol=1e-12)
    assert heights.max() > 0.9                                                 # nearly one-hot
    scaled_box.value = True                                                    # the scale undoes it
    heights_scaled = np.array([patch.get_height() for patch in _latest_axes()[0].patches])
    assert heights_scaled.max() < heights.max()
