"""flash_viz: the tile figure shows the right tile, the skipped tiles, and shares that reach 1.

Planted bugs caught: drawing the current tile at (row, col) swapped (the red patch test), forgetting
the rescale in the share (shares exceed 1 or never reach it), hatching visited tiles."""

import pytest
import torch
from matplotlib.patches import Rectangle

from attnflex_lab.viz import flash_tiles as flash_viz


@pytest.fixture
def story():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    k = torch.randn(10, 4, generator=gen, dtype=torch.float64)
    return flash_viz.tile_story(q, k, causal=True, block_q=4, block_k=4)


def _patches(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_current_tile_is_red_and_skipped_tiles_are_hatched(story):
    steps = story["steps"]
    assert len(steps) == 6                                   # 1 + 2 + 3 of the 9 tiles
    fig = flash_viz.draw_tile_step(story, 4)
    ax_w = fig.axes[0]
    (i0, i1), (j0, j1) = steps[4]["rows"], steps[4]["cols"]
    red = [p for p in _patches(ax_w) if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(red) == 1 and red[0].get_xy() == (j0 - 0.5, i0 - 0.5)
    assert red[0].get_width() == j1 - j0 and red[0].get_height() == i1 - i0
    assert sum(1 for p in _patches(ax_w) if p.get_hatch()) == 3
    assert "step 5/6" in ax_w.get_title()


def test_share_of_the_row_sum_reaches_one_at_the_diagonal(story):
    for index, step in enumerate(story["steps"]):
        fig = flash_viz.draw_tile_step(story, index)
        widths = [bar.get_width() for bar in fig.axes[1].patches]
        assert all(0 < w <= 1 + 1e-12 for w in widths)
        if step["cols"][1] >= step["rows"][1]:               # the row block's last tile
            assert widths == pytest.approx([1.0] * len(widths))


def test_bad_step_and_the_widget(story):
    with pytest.raises(ValueError, match="0..5"):
        flash_viz.draw_tile_step(story, 6)
    widget = flash_viz.tile_explorer(torch.randn(8, 4), torch.randn(8, 4))
    slider = widget.children[0]
    assert slider.max == 2 and slider.description == "step"  # 8 rows, 4 × 4 tiles, causal: 1 + 2
