"""Lesson 09's figures: recipe curves over seeds, the reliability diagram and the curve explorer."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.metrics import reliability_bins
from attnflex_lab.viz.recipes import (
    mean_curve,
    plot_recipe_curves,
    plot_reliability_diagram,
    recipe_curve_explorer,
)
from tests.widgets import find_widget

SAVED = {
    "schedules": {"constant": [([0, 10, 20], [0.1, 0.5, 0.9]), ([0, 10, 20], [0.3, 0.5, 0.7])],
                  "warm-up": [([0, 10, 20], [0.1, 0.2, 0.3]), ([0, 10, 20], [0.1, 0.4, 0.5])]},
    "dropout": {"none": [([0, 5], [1.0, 2.0])]},
}


def test_mean_curve_averages_seeds_on_the_steps_all_reached():
    steps, mean, sd = mean_curve([([0, 1, 2], [1.0, 2.0, 3.0]), ([0, 1], [3.0, 4.0])])
    np.testing.assert_allclose(steps, [0, 1])
    np.testing.assert_allclose(mean, [2.0, 3.0])
    np.testing.assert_allclose(sd, [np.sqrt(2), np.sqrt(2)])


def test_recipe_curves_draw_the_mean_of_each_variant():
    ax = plot_recipe_curves(SAVED["schedules"], ylabel="accuracy")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["constant (2 seeds)", "warm-up (2 seeds)"]
    np.testing.assert_allclose(lines[0].get_ydata(), [0.2, 0.5, 0.8])
    assert ax.get_ylabel() == "accuracy"
    with pytest.raises(ValueError, match="3 steps but 2 values"):
        plot_recipe_curves({"bad": [([0, 1, 2], [0.0, 1.0])]})


def test_reliability_diagram_bars_are_the_bin_accuracies():
    probs = torch.tensor([[0.3, 0.4, 0.3], [0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    bins = reliability_bins(probs, torch.tensor([0, 0, 1, 2]), n_bins=2)
    ax = plot_reliability_diagram(bins)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [0.0, 2 / 3])
    np.testing.assert_allclose([p.get_x() for p in ax.patches], [0.0, 0.5])


def test_explorer_redraws_the_saved_curves_of_the_chosen_recipe():
    box = recipe_curve_explorer(SAVED, ylabels={"schedules": "val accuracy"})
    menu = find_widget(box, "recipe")
    assert menu is not None and list(menu.options) == ["schedules", "dropout"]
    first = plt.get_fignums()[-1]
    assert plt.figure(first).axes[0].get_title() == "schedules"
    menu.value = "dropout"
    latest = plt.get_fignums()[-1]
    assert latest != first                               # the menu triggered a redraw
    ax = plt.figure(latest).axes[0]
    assert ax.get_title() == "dropout"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.0, 2.0])
    find_widget(box, "log y").value = True
    assert plt.figure(plt.get_fignums()[-1]).axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="non-empty"):
        recipe_curve_explorer({})
