"""The training-snapshot slider of lesson 04, driven without a browser."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.viz import alignment_snapshots
from tests.widgets import find_widget


def _drawn():
    return np.asarray(plt.figure(plt.get_fignums()[-1]).axes[0].images[0].get_array())


def test_snapshot_slider_redraws_the_chosen_recording():
    torch.manual_seed(0)
    maps = [torch.softmax(torch.randn(3, 5) * (i + 1), -1) for i in range(4)]   # 4 x (T=3, S=5)
    box = alignment_snapshots(maps, [0, 10, 20, 30], list("abcde"), list("xyz"),
                              true_positions=torch.tensor([0, -1, 4]))
    slider = find_widget(box, "snapshot")
    assert slider is not None and (slider.min, slider.max) == (0, 3)
    np.testing.assert_allclose(_drawn(), maps[0].numpy(), rtol=1e-6)        # drawn when built
    slider.value = 2
    np.testing.assert_allclose(_drawn(), maps[2].numpy(), rtol=1e-6)        # the chosen snapshot
    assert plt.figure(plt.get_fignums()[-1]).axes[0].get_title().startswith("step 20")


def test_snapshot_slider_rejects_mismatched_steps():
    with pytest.raises(ValueError, match="one step per snapshot"):
        alignment_snapshots([torch.ones(2, 2) / 2], [0, 1], list("ab"), list("xy"))


def test_image_slider_redraws_the_chosen_image_and_its_attention():
    from attnflex_lab.viz import attention_image_slider
    from attnflex_lab.viz.images import upsample_attention

    torch.manual_seed(0)
    images = torch.rand(3, 1, 8, 8)
    weights = torch.softmax(torch.randn(3, 16) * 3, -1)                     # (N, T=16)
    box = attention_image_slider(images, weights, titles=["a", "b", "c"])
    slider = find_widget(box, "image")
    assert slider is not None and slider.max == 2
    slider.value = 1
    ax = plt.figure(plt.get_fignums()[-1]).axes[0]
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), images[1, 0].numpy())
    np.testing.assert_allclose(np.asarray(ax.images[1].get_array()),
                               upsample_attention(weights[1], (8, 8)), rtol=1e-6)
    assert ax.get_title() == "b"
    with pytest.raises(ValueError, match="one weight row per image"):
        attention_image_slider(images, weights[:2])
