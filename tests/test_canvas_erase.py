"""Lesson 03's erase widget: the erasures, and the explorer driven without a browser."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.tasks.canvas import digit_regions, erase_regions, erasure_choices
from attnflex_lab.viz import erase_explorer
from attnflex_lab.viz.images import upsample_attention
from tests.widgets import find_widget


def test_erasing_blanks_exactly_the_chosen_regions():
    images = torch.rand(2, 1, 8, 8) + 0.1                              # no pixel is 0 before erasing
    erase = torch.zeros(2, 16, dtype=torch.bool)
    erase[0, 6] = True                                                  # row 1, column 2 of the 4×4 grid
    out = erase_regions(images, erase)
    blank = out == 0
    assert blank[0, 0, 2:4, 4:6].all() and int(blank.sum()) == 4       # its 2×2 pixels, nothing else
    torch.testing.assert_close(out[1], images[1])
    with pytest.raises(ValueError, match="bool"):
        erase_regions(images, erase.float())


def test_the_erasure_choices_follow_the_attention_and_the_digit():
    alpha = torch.softmax(torch.randn(3, 64), -1)
    on_digit = digit_regions(torch.tensor([[0, 0], [4, 6], [8, 8]]), 16)
    choices = erasure_choices(alpha, on_digit)
    assert not choices["nothing"].any()
    assert (choices["the most-attended region"].float().argmax(-1) == alpha.argmax(-1)).all()
    assert (choices["the 3 most-attended regions"].sum(-1) == 3).all()
    assert torch.equal(choices["every region on the digit"] | choices["the clutter (every region off the digit)"],
                       torch.ones_like(on_digit))


def _last_figure():
    return plt.figure(plt.get_fignums()[-1])


def test_the_explorer_redraws_the_chosen_image_and_erasure(capsys):
    gen = torch.Generator().manual_seed(0)
    N, K, T, C = 2, 3, 16, 10
    images = torch.rand(N, K, 1, 8, 8, generator=gen)
    weights = torch.softmax(3 * torch.randn(N, K, T, generator=gen), -1)
    probs = torch.softmax(torch.randn(N, K, C, generator=gen), -1)
    on_digit = torch.zeros(N, T, dtype=torch.bool)
    on_digit[:, :4] = True
    box = erase_explorer(images, weights, probs, choices=["nothing", "a", "b"], labels=[3, 7], on_digit=on_digit)
    image, erase = find_widget(box, "image"), find_widget(box, "erase")
    assert image is not None and erase is not None
    erase.value = 2
    image.value = 1
    picture, bars = _last_figure().axes[:2]
    np.testing.assert_allclose(np.asarray(picture.images[0].get_array()), images[1, 2, 0].numpy())
    np.testing.assert_allclose(np.asarray(picture.images[1].get_array()),
                               upsample_attention(weights[1, 2], (8, 8)), rtol=1e-6)
    np.testing.assert_allclose([b.get_height() for b in bars.patches], probs[1, 2].numpy(), rtol=1e-6)
    assert f"before erasing: {int(probs[1, 0].argmax())}" in bars.get_title()
    mass = weights[1, 2, :4].sum().item()
    assert f"{mass:.2f} now" in capsys.readouterr().out
    with pytest.raises(ValueError, match="one name per erasure"):
        erase_explorer(images, weights, probs, choices=["nothing"], labels=[3, 7])
