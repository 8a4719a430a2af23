"""Attention visualizers: checked on the drawn objects (image arrays, tick labels, plotly data),
never on pixels."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab import functional
from attnflex_lab.viz import (
    attention_figure,
    explore_attention,
    explorer_weights,
    plot_attention,
    plot_heads,
)
from attnflex_lab.viz._prep import prepare
from attnflex_lab.viz.explore import draw_explorer
from tests.widgets import find_widget


@pytest.fixture(autouse=True)
def _seeded():
    """Random inputs are seeded: a near-tie of two scores would make the τ → 0 argmax check flaky."""
    torch.manual_seed(0)

WORDS = "the cat sat on the mat".split()


def _weights(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=gen), dim=-1)


def _ticks(labels):
    return [label.get_text() for label in labels]


# --- data prep ------------------------------------------------------------------------------

def test_prepare_picks_batch_then_head():
    w = _weights(2, 3, 4, 5)                                 # (B, H, T, S)
    got = prepare(w, batch=1, head=2).weights
    np.testing.assert_allclose(got, w[1, 2].numpy(), rtol=1e-6)
    assert got.dtype == np.float64


def test_prepare_three_dims_is_heads_or_batch():
    w = _weights(3, 4, 5)
    np.testing.assert_allclose(prepare(w, head=1).weights, w[1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(prepare(w, batch=2).weights, w[2].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        prepare(w, head=0, batch=0)


def test_prepare_size_one_dims_need_no_index():
    w = _weights(1, 1, 4, 5)
    np.testing.assert_allclose(prepare(w).weights, w[0, 0].numpy(), rtol=1e-6)


def test_prepare_asks_for_an_index_when_ambiguous():
    with pytest.raises(ValueError,
                       match=r"4 entries along the head dim; choose one with head=0\.\.3"):
        prepare(_weights(4, 3, 3))


def test_prepare_rejects_out_of_range_index():
    with pytest.raises(ValueError, match="head=5 is out of range.*3 entries"):
        prepare(_weights(3, 4, 4), head=5)


def test_prepare_detaches_grad_tensors():
    w = _weights(3, 3).requires_grad_()
    assert prepare(w).weights.shape == (3, 3)


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4, 5)])
def test_prepare_rejects_wrong_dims(shape):
    with pytest.raises(ValueError, match=r"\(T, S\), \(H, T, S\) or \(B, H, T, S\)"):
        prepare(torch.rand(*shape))


def test_prepare_rejects_nan_and_inf():
    w = _weights(3, 4)
    w[1, 2] = float("nan")
    w[2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"2 NaN/inf entries \(first at index \(1, 2\)\)"):
        prepare(w)


def test_prepare_rejects_non_numbers():
    with pytest.raises(TypeError, match="tensor or array of numbers"):
        prepare([["a", "b"], ["c", "d"]])


def test_label_count_mismatch_names_both_counts():
    w = _weights(6, 7)
    with pytest.raises(ValueError,
                       match="weights have 7 key positions, but 6 key labels were given"):
        plot_attention(w, WORDS, WORDS)
    with pytest.raises(ValueError, match="weights have 6 query positions, but 5 query labels"):
        attention_figure(w, WORDS[:5])


def test_a_plain_string_is_not_taken_for_labels():
    with pytest.raises(TypeError, match=r"list\(text\) for characters"):
        plot_attention(_weights(3, 3), "cat", "cat")


# --- matplotlib heatmap ---------------------------------------------------------------------

def test_plot_attention_draws_the_chosen_map_with_labels():
    w = _weights(2, 3, 6, 6)
    ax = plot_attention(w, WORDS, WORDS, batch=1, head=2, title="b1 h2")
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), w[1, 2].numpy(), rtol=1e-6)
    assert _ticks(ax.get_yticklabels()) == WORDS
    assert _ticks(ax.get_xticklabels()) == WORDS
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query"
    assert ax.get_title() == "b1 h2"
    assert len(ax.figure.axes) == 2  # the map and its colorbar


def test_plot_attention_uses_the_given_axes_and_colour_range():
    fig, (left, right) = plt.subplots(1, 2)
    ax = plot_attention(_weights(3, 4), ax=right, vmax=1.0, colorbar=False)
    assert ax is right
    assert not left.images and len(fig.axes) == 2
    assert ax.images[0].get_clim() == (0.0, 1.0)


def test_plot_attention_annotates_every_cell():
    w = _weights(3, 4)
    ax = plot_attention(w, annotate=True)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 12
    assert texts[0] == f"{w[0, 0].item():.2f}"


def test_plot_attention_does_not_change_global_state():
    before = dict(plt.rcParams)
    plot_attention(_weights(3, 3), annotate=True)
    assert dict(plt.rcParams) == before


def test_plot_heads_grid_has_one_panel_per_layer_and_head():
    layers = [_weights(4, 6, 6, seed=s) for s in range(3)]   # L=3 x (H=4, T, S)
    fig = plot_heads(layers, WORDS, WORDS, layer_names=["L0", "L1", "L2"])
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 12
    assert len(fig.axes) == 13  # 12 panels + one shared colorbar
    np.testing.assert_allclose(np.asarray(panels[6].images[0].get_array()),
                               layers[1][2].numpy(), rtol=1e-6)  # row 1 (L1), column 2 (head 2)
    assert panels[6].get_title() == "L1 · head 2"
    clims = {ax.images[0].get_clim() for ax in panels}
    assert len(clims) == 1  # one colour scale shared by every head


def test_plot_heads_accepts_a_stack_and_picks_the_batch():
    stack = _weights(2, 3, 2, 4, 4)                           # (L, B, H, T, S)
    fig = plot_heads(stack, batch=1)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4
    np.testing.assert_allclose(np.asarray(panels[3].images[0].get_array()),
                               stack[1, 1, 1].numpy(), rtol=1e-6)


def test_plot_heads_checks_layer_names():
    with pytest.raises(ValueError, match="2 layers, but layer_names has 3 names"):
        plot_heads(_weights(2, 2, 3, 3), layer_names=["a", "b", "c"])


# --- plotly ---------------------------------------------------------------------------------

def test_attention_figure_data_and_hover():
    w = _weights(6, 6)
    fig = attention_figure(w, WORDS, WORDS)
    heatmap = fig.data[0]
    np.testing.assert_allclose(np.asarray(heatmap.z), w.numpy(), rtol=1e-6)
    assert heatmap.text[1][4] == f"query 1: cat<br>key 4: the<br>weight: {w[1, 4].item():.3f}"
    assert "%{text}" in heatmap.hovertemplate
    # repeated tokens ("the" twice) stay two columns: positions on the axis, words as tick text
    assert list(fig.layout.xaxis.ticktext) == WORDS
    assert list(fig.layout.xaxis.tickvals) == list(range(6))
    assert fig.layout.yaxis.autorange == "reversed"


# --- widget explorer ------------------------------------------------------------------------

def test_explorer_weights_match_the_reference_math():
    q, k = torch.randn(5, 8), torch.randn(5, 8)
    got = explorer_weights(q, k, temperature=0.5, scaled=True)
    _, expected = functional.attention(q, k, k, scale=8 ** -0.5 / 0.5)
    torch.testing.assert_close(got, expected)
    causal = explorer_weights(q, k, temperature=1.0, scaled=False, mask="causal")
    assert torch.all(causal.triu(diagonal=1) == 0)
    padded = explorer_weights(q, k, temperature=1.0, scaled=False, mask="padding", pad_keys=2)
    assert torch.all(padded[:, -2:] == 0)
    torch.testing.assert_close(padded.sum(-1), torch.ones(5))


def test_explorer_temperature_limits():
    q, k = torch.randn(4, 8), torch.randn(6, 8)
    cold = explorer_weights(q, k, temperature=1e-3, scaled=True)
    hot = explorer_weights(q, k, temperature=1e4, scaled=True)
    scores = q @ k.T
    torch.testing.assert_close(cold.argmax(-1), scores.argmax(-1))
    assert torch.all(cold.amax(-1) > 0.99)
    torch.testing.assert_close(hot, torch.full((4, 6), 1 / 6), atol=1e-3, rtol=0)


def test_draw_explorer_shows_heatmap_and_chosen_query_bars():
    w = _weights(6, 6)
    fig = draw_explorer(w, 2, WORDS, WORDS)
    heat, bars = fig.axes[0], fig.axes[1]  # (axes[2] is the heatmap's colorbar)
    np.testing.assert_allclose(np.asarray(heat.images[0].get_array()), w.numpy(), rtol=1e-6)
    np.testing.assert_allclose([p.get_height() for p in bars.patches], w[2].numpy(), rtol=1e-6)
    assert "query 2 (sat)" in bars.get_title()


def test_explorer_builds_and_redraws_when_the_temperature_moves():
    q, k = torch.randn(6, 8), torch.randn(6, 8)
    box = explore_attention(q, k, WORDS, WORDS)
    slider = find_widget(box, "temperature")
    assert slider is not None and find_widget(box, "query") is not None and find_widget(box, "mask") is not None
    first = plt.get_fignums()[-1]                           # drawn once when built
    before = np.asarray(plt.figure(first).axes[0].images[0].get_array()).copy()
    slider.value = 0.1
    latest = plt.get_fignums()[-1]
    assert latest != first                                  # the slider triggered a redraw
    after = np.asarray(plt.figure(latest).axes[0].images[0].get_array())
    assert not np.allclose(before, after)
    expected = explorer_weights(q.double(), k.double(), temperature=slider.value, scaled=True)
    np.testing.assert_allclose(after, expected.numpy(), rtol=1e-6)
    assert after.max(axis=1).mean() > before.max(axis=1).mean()  # colder is peakier


def test_explorer_mask_menu_changes_the_drawing():
    q, k = torch.randn(5, 4), torch.randn(5, 4)
    box = explore_attention(q, k)
    find_widget(box, "mask").value = "causal"
    drawn = np.asarray(plt.figure(plt.get_fignums()[-1]).axes[0].images[0].get_array())
    assert np.all(np.triu(drawn, k=1) == 0)


def test_explorer_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"q \(T, D\) and k \(S, D\)"):
        explore_attention(torch.randn(2, 5, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="pad_keys"):
        explore_attention(torch.randn(5, 4), torch.randn(5, 4), pad_keys=5)
    with pytest.raises(ValueError, match="temperature must be positive"):
        explorer_weights(torch.randn(2, 3), torch.randn(2, 3), temperature=0.0, scaled=True)
    with pytest.raises(ValueError, match=r"pad_keys must be between 1 and S - 1 = 1, got 2"):
        explorer_weights(torch.randn(2, 3), torch.randn(2, 3), temperature=1.0, scaled=True,
                         mask="padding", pad_keys=2)
    with pytest.raises(ValueError, match=r"q and k must share the last dim D, got q \(2, 3\) and k \(2, 4\)"):
        explorer_weights(torch.randn(2, 3), torch.randn(2, 4), temperature=1.0, scaled=True)
    with pytest.raises(ValueError, match=r"weights \(T, S\).*shape \(1, 6, 6\) and query=0"):
        draw_explorer(_weights(1, 6, 6), 0, WORDS, WORDS)
    with pytest.raises(ValueError, match=r"query in 0\.\.T-1.*query=6"):
        draw_explorer(_weights(6, 6), 6, WORDS, WORDS)
