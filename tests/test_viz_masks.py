"""viz draws masks as masked (never as a learned 0), formats annotations, and its explorer uses the
package's own math and masks (functional.attention, modules.causal_mask), on tensors or arrays.

Checked on the drawn objects (the image's masked array, annotation texts, legend, hatch patches),
never on pixels. Planted bugs these tests were run against: the explorer's old ``tril()`` causal
mask (differs from ``modules.causal_mask`` when T ≠ S); a heatmap that draws masked cells as plain
zeros; annotations written into masked cells; ``fmt`` ignored.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab import functional
from attnflex_lab.modules import causal_mask, padding_mask
from attnflex_lab.viz import explore_attention, explorer_weights, plot_attention
from attnflex_lab.viz.explore import draw_explorer, explorer_mask
from attnflex_lab.viz.heatmap import MASKED_LABEL
from tests.widgets import find_widget


def _qk(T, S, D=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(T, D, generator=gen), torch.randn(S, D, generator=gen)


def _hatched_cells(ax):
    """(row, col) of every hatched cell: one Rectangle path per masked cell in the collection."""
    cells = set()
    for collection in ax.collections:
        if collection.get_hatch():
            for path in collection.get_paths():
                x0, y0 = path.vertices.min(axis=0)
                cells.add((round(y0 + 0.5), round(x0 + 0.5)))
    return cells


# --- plot_attention(mask=) -------------------------------------------------------------------

def test_masked_cells_are_masked_in_the_image_hatched_and_explained():
    T, S = 4, 6
    mask = causal_mask(T, S)                                          # (T, S), T ≠ S
    q, k = _qk(T, S)
    _, weights = functional.attention(q, k, k, mask=mask)             # (T, S)
    ax = plot_attention(weights, mask=mask)
    drawn = ax.images[0].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn), ~mask.numpy())
    np.testing.assert_allclose(drawn.data[mask.numpy()], weights[mask].numpy(), rtol=1e-6)
    assert _hatched_cells(ax) == {tuple(rc) for rc in np.argwhere(~mask.numpy())}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [MASKED_LABEL]


def test_without_a_mask_nothing_is_masked_and_no_legend():
    ax = plot_attention(torch.softmax(torch.randn(3, 5), -1))
    assert not np.ma.getmaskarray(ax.images[0].get_array()).any()
    assert ax.get_legend() is None and not _hatched_cells(ax)


def test_mask_broadcasts_and_is_picked_with_batch_and_head():
    B, H, T = 3, 2, 5
    weights = torch.softmax(torch.randn(B, H, T, T), -1)
    pad = padding_mask(torch.tensor([5, 3, 2]), T)                    # (B, 1, 1, S)
    ax = plot_attention(weights, batch=1, head=1, mask=pad)
    expected = np.broadcast_to(~pad[1, 0].numpy(), (T, T))            # keys 3, 4 masked in every row
    np.testing.assert_array_equal(np.ma.getmaskarray(ax.images[0].get_array()), expected)


def test_raw_scores_with_minus_inf_under_the_mask_can_be_drawn():
    """Masked scores are often -inf; they are hidden, and the colour scale comes from the rest."""
    mask = causal_mask(3)
    scores = torch.randn(3, 3).masked_fill(~mask, float("-inf"))
    with pytest.raises(ValueError, match="NaN/inf"):
        plot_attention(scores, vmin=None)
    ax = plot_attention(scores, vmin=None, mask=mask)
    assert ax.images[0].get_clim() == pytest.approx((scores[mask].min().item(), scores[mask].max().item()))


def test_annotations_use_fmt_and_skip_masked_cells():
    mask = causal_mask(3)
    weights = functional.masked_softmax(torch.randn(3, 3), mask)
    ax = plot_attention(weights, mask=mask, annotate=True, fmt=".1%")
    texts = [t.get_text() for t in ax.texts]
    assert texts == [format(weights[i, j].item(), ".1%") for i in range(3) for j in range(3) if mask[i, j]]
    assert len(texts) == 6 and texts[0] == "100.0%"                    # query 0 sees only key 0
    default = plot_attention(weights, annotate=True)
    assert [t.get_text() for t in default.texts][1] == "0.00"          # no mask: every cell, ".2f"


def test_bad_mask_and_fmt_get_clear_errors():
    weights = torch.softmax(torch.randn(4, 6), -1)
    with pytest.raises(TypeError, match="mask must be boolean.*float32"):
        plot_attention(weights, mask=torch.ones(4, 6))
    with pytest.raises(ValueError, match=r"mask of shape \(5,\) does not broadcast to the weights' shape \(4, 6\)"):
        plot_attention(weights, mask=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="annotate=True"):
        plot_attention(weights, fmt=".3f")
    with pytest.raises(ValueError, match=r"fmt='%d' is not a format spec"):
        plot_attention(weights, annotate=True, fmt="%d")
    with pytest.raises(TypeError, match="fmt must be a format spec string"):
        plot_attention(weights, annotate=True, fmt=2)
    with pytest.raises(TypeError, match="positional arguments"):
        plot_attention(weights, None, None, None)                     # ax and the rest are keyword-only


def test_masking_does_not_touch_the_registered_colormap():
    before = plt.get_cmap("viridis").get_bad().tolist()
    plot_attention(torch.softmax(torch.randn(3, 3), -1), mask=causal_mask(3))
    assert plt.get_cmap("viridis").get_bad().tolist() == before


def test_numpy_weights_and_mask():
    weights = np.array([[1.0, 0.0], [0.25, 0.75]])
    mask = np.array([[True, False], [True, True]])
    ax = plot_attention(weights, mask=mask, annotate=True, fmt=".2f")
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.25", "0.75"]


# --- the explorer ---------------------------------------------------------------------------

@pytest.mark.parametrize("T,S", [(3, 6), (6, 3), (5, 5)])
def test_explorer_causal_is_the_package_causal_mask(T, S):
    """With T ≠ S a plain tril() lets query 0 of (3, 6) see one key instead of four."""
    q, k = _qk(T, S)
    assert torch.equal(explorer_mask("causal", T, S, 1), causal_mask(T, S))
    got = explorer_weights(q, k, temperature=0.7, scaled=True, mask="causal")
    _, expected = functional.attention(q, k, k, mask=causal_mask(T, S), scale=4 ** -0.5 / 0.7)
    torch.testing.assert_close(got, expected)
    assert torch.equal(got > 0, causal_mask(T, S))                    # exactly the allowed cells carry weight


def test_explorer_widget_draws_the_mask_as_masked_when_T_differs_from_S():
    q, k = _qk(3, 6)
    box = explore_attention(q, k)
    find_widget(box, "mask").value = "causal"
    drawn = plt.figure(plt.get_fignums()[-1]).axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn), ~causal_mask(3, 6).numpy())
    find_widget(box, "mask").value = "padding"                              # default: a quarter of 6 keys -> 1
    drawn = plt.figure(plt.get_fignums()[-1]).axes[0].images[0].get_array()
    assert np.ma.getmaskarray(drawn)[:, -1].all() and not np.ma.getmaskarray(drawn)[:, :-1].any()
    find_widget(box, "mask").value = "none"
    drawn = plt.figure(plt.get_fignums()[-1]).axes[0].images[0].get_array()
    assert not np.ma.getmaskarray(drawn).any()


def test_explorer_takes_arrays():
    q, k = _qk(4, 5)
    from_arrays = explorer_weights(q.numpy(), k.numpy().tolist(), temperature=1.0, scaled=False,
                                   mask="padding", pad_keys=2)
    from_tensors = explorer_weights(q, k, temperature=1.0, scaled=False, mask="padding", pad_keys=2)
    assert from_arrays.dtype == torch.float64                         # arrays alone: float64
    torch.testing.assert_close(from_arrays.float(), from_tensors)
    mixed = explorer_weights(q, k.double().numpy(), temperature=1.0, scaled=False)  # array follows q's dtype
    assert mixed.dtype == torch.float32
    box = explore_attention(q.numpy(), k.numpy())
    assert find_widget(box, "temperature") is not None
    with pytest.raises(TypeError, match="tensor or array of numbers"):
        explorer_weights([["a"]], k, temperature=1.0, scaled=True)
    with pytest.raises(TypeError, match="floating-point"):
        explore_attention(torch.ones(3, 4, dtype=torch.long), k)


def test_draw_explorer_passes_the_mask_to_the_heatmap():
    mask = causal_mask(3, 5)
    weights = functional.masked_softmax(torch.randn(3, 5), mask)
    fig = draw_explorer(weights, 1, list("abc"), list("vwxyz"), mask=mask)
    np.testing.assert_array_equal(np.ma.getmaskarray(fig.axes[0].images[0].get_array()), ~mask.numpy())
