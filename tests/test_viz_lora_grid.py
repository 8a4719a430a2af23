"""Lesson 10's LoRA rank × targets widget: moving a control redraws the chosen run from the grid."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from attnflex_lab.viz.lora_grid import draw_lora_grid, lora_grid_explorer
from tests.widgets import find_widget

GRID = {(r, t): {"accuracy": acc, "retention": 1 - acc, "trainable": r * n}
        for t, n, accs in (("q", 64, (0.2, 0.3, 0.4)), ("q+v", 128, (0.5, 0.7, 0.9)))
        for r, acc in zip((1, 2, 4), accs, strict=True)}


def _chosen(ax):
    """(rank, accuracy) of the ringed point."""
    return tuple(ax.collections[0].get_offsets()[0])


def test_the_drawing_plots_every_target_set_and_rings_the_chosen_run():
    ax = draw_lora_grid(GRID, 2, "q")
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["q"], [0.2, 0.3, 0.4])
    np.testing.assert_allclose(lines["q+v"], [0.5, 0.7, 0.9])
    assert _chosen(ax) == (2, 0.3)
    assert ax.get_title().startswith("rank 2 on q: 128 trainable, accuracy 0.300, retention 0.700")


def test_moving_the_controls_redraws_the_chosen_run():
    box = lora_grid_explorer(GRID)
    rank, targets = find_widget(box, "rank"), find_widget(box, "targets")
    assert list(rank.options) == [1, 2, 4] and list(targets.options) == ["q", "q+v"]
    assert _chosen(plt.figure(plt.get_fignums()[-1]).axes[0]) == (2, 0.7)      # starts at rank 2, q+v
    targets.value = "q"
    assert _chosen(plt.figure(plt.get_fignums()[-1]).axes[0]) == (2, 0.3)
    rank.value = 4
    ax = plt.figure(plt.get_fignums()[-1]).axes[0]
    assert _chosen(ax) == (4, 0.4) and "rank 4 on q" in ax.get_title()


def test_a_grid_with_a_hole_or_a_bad_key_is_refused():
    holed = {k: v for k, v in GRID.items() if k != (2, "q")}
    with pytest.raises(ValueError, match=r"missing \[\(2, 'q'\)\]"):
        lora_grid_explorer(holed)
    with pytest.raises(ValueError, match="keys are"):
        draw_lora_grid({"4": GRID[(4, "q")]}, 4, "q")
    with pytest.raises(ValueError, match="no run for rank 8"):
        draw_lora_grid(GRID, 8, "q")
