"""viz.heads (grid, plotly grid, explorer, summary) and viz.rollout."""

import ipywidgets as widgets
import numpy as np
import pytest
import torch

from attnflex_lab.viz.heads import (
    draw_head_query,
    head_explorer,
    head_grid_figure,
    head_summary,
    plot_head_grid,
)
from attnflex_lab.viz.rollout import (
    attention_rollout,
    cls_patch_map,
    plot_rollout_grid,
    plot_rollout_overlay,
)


def _maps(L=2, H=3, T=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(L, H, T, T, generator=g), dim=-1)   # (L, H, T, S)


def test_static_grid_has_one_panel_per_head_and_layer():
    maps = _maps()
    fig = plot_head_grid(maps, list("abcd"), list("abcd"))
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    np.testing.assert_allclose(panels[4].images[0].get_array(), maps[1, 1].numpy())
    assert panels[4].get_title() == "layer 1 · head 1"


def test_static_grid_takes_a_batch_from_a_cache_stack():
    maps = torch.softmax(torch.randn(2, 5, 3, 4, 4), -1)   # (L, B, H, T, S)
    fig = plot_head_grid(maps, batch=2)
    panel = [ax for ax in fig.axes if ax.images][0]
    np.testing.assert_allclose(panel.images[0].get_array(), maps[0, 2, 0].numpy())


def test_plotly_grid_traces_and_hover():
    maps = _maps()
    fig = head_grid_figure(maps, list("wxyz"), list("wxyz"))
    assert len(fig.data) == 6
    np.testing.assert_allclose(np.asarray(fig.data[5].z), maps[1, 2].numpy())
    assert "query 0 (w)" in fig.data[0].text[0][0]
    assert sum(bool(t.showscale) for t in fig.data) == 1


def test_label_mismatch_is_explained():
    with pytest.raises(ValueError, match="4 query positions, but 3 query labels"):
        plot_head_grid(_maps(), list("abc"), list("abcd"))


def test_head_summary_entropy():
    maps = torch.zeros(1, 2, 3, 3)
    maps[0, 0] = torch.eye(3)                      # one-hot rows: entropy 0
    maps[0, 1] = torch.full((3, 3), 1 / 3)         # uniform rows: entropy log 3
    np.testing.assert_allclose(head_summary(maps), [[0.0, np.log(3)]], atol=1e-12)


def test_explorer_builds_and_draws():
    maps = _maps()
    box = head_explorer(maps, list("abcd"), list("abcd"))
    assert isinstance(box, widgets.VBox)
    sliders = box.children[0].children
    assert [w.description for w in sliders] == ["layer", "head", "query"]
    assert sliders[0].max == 1 and sliders[1].max == 2
    fig = draw_head_query(maps.numpy(), 1, 2, 3, list("abcd"), list("abcd"))
    bars = fig.axes[1].patches
    np.testing.assert_allclose([b.get_height() for b in bars], maps[1, 2, 3].numpy(), rtol=1e-6)


def test_rollout_of_identity_attention_is_identity():
    maps = torch.eye(5).expand(3, 2, 5, 5)
    np.testing.assert_allclose(attention_rollout(maps), np.eye(5))


def test_rollout_matches_hand_computation():
    maps = _maps(L=2, H=2, T=3, seed=4).double().numpy()
    eye = np.eye(3)
    a1 = 0.5 * maps[0].mean(0) + 0.5 * eye
    a2 = 0.5 * maps[1].mean(0) + 0.5 * eye
    expected = (a2 / a2.sum(-1, keepdims=True)) @ (a1 / a1.sum(-1, keepdims=True))
    rollout = attention_rollout(maps)
    np.testing.assert_allclose(rollout, expected)
    np.testing.assert_allclose(rollout.sum(-1), np.ones(3))       # rows stay distributions
    no_residual = attention_rollout(maps, residual=False)
    np.testing.assert_allclose(no_residual, maps[1].mean(0) @ maps[0].mean(0))


def test_rollout_errors():
    with pytest.raises(ValueError, match="T == S"):
        attention_rollout(torch.softmax(torch.randn(1, 1, 3, 4), -1))
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(_maps(), head_fusion="median")


def test_cls_patch_map_and_overlay():
    rollout = np.zeros((17, 17))
    rollout[0, 1:] = np.arange(16)
    heat = cls_patch_map(rollout, 4)
    assert heat.shape == (4, 4) and heat[1, 2] == 6       # patch 6 is row 1, column 2
    image = np.random.default_rng(0).random((8, 8))
    ax = plot_rollout_overlay(image, heat, title="digit")
    assert len(ax.images) == 2 and ax.get_title() == "digit"
    np.testing.assert_allclose(ax.images[1].get_array(), heat)
    assert ax.images[0].get_extent() == ax.images[1].get_extent()
    assert len(ax.collections) >= 1                        # the digit's outline drawn on top
    with pytest.raises(ValueError, match=r"\(17, 17\)"):
        cls_patch_map(np.zeros((10, 10)), 4)
    with pytest.raises(ValueError, match="tile"):
        plot_rollout_overlay(np.zeros((8, 8)), np.zeros((3, 3)))
    fig = plot_rollout_grid([image, image], [heat, heat], labels=["a", "b"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
