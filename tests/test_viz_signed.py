"""viz.rollout.plot_signed_patch_map: signed attributions on a diverging map centred at 0, with a colour bar."""

import numpy as np
import pytest

from attnflex_lab.viz.rollout import plot_signed_patch_map


def test_signed_map_is_centred_at_zero_with_a_colour_bar():
    heat = np.array([[0.5, -2.0], [0.0, 1.0]])
    ax = plot_signed_patch_map(np.random.default_rng(0).random((8, 8)), heat, title="IG")
    shown = ax.images[0]
    assert shown.get_clim() == (-2.0, 2.0)                      # symmetric: 0 is the middle colour
    assert shown.get_cmap().name == "RdBu_r"
    np.testing.assert_array_equal(shown.get_array(), heat)
    assert len(ax.figure.axes) == 2 and ax.get_title() == "IG"  # the map and its colour bar
    with pytest.raises(ValueError, match="tile image"):
        plot_signed_patch_map(np.zeros((8, 8)), np.zeros((3, 3)))
