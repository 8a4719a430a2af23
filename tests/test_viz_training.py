"""Training figures: overlays, confusion matrix, curves, alignment heatmaps (data, not pixels)."""

import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from attnflex_lab.training import History
from attnflex_lab.viz import (
    history_figure,
    plot_alignment,
    plot_attention_gallery,
    plot_attention_on_image,
    plot_confusion_matrix,
    plot_curves,
    plot_history,
)
from attnflex_lab.viz.images import confusion_matrix, upsample_attention


def test_upsampled_attention_keeps_each_region_and_the_total():
    alpha = torch.arange(16, dtype=torch.float32) / 120  # sums to 1
    big = upsample_attention(alpha, (8, 8))
    assert big.shape == (8, 8) and big.sum() == pytest.approx(1.0)
    assert np.allclose(big[:2, :2], alpha[0] / 4) and np.allclose(big[6:, 6:], alpha[15] / 4)
    smooth = upsample_attention(alpha, (8, 8), mode="bilinear")
    assert smooth.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="square grid"):
        upsample_attention(torch.ones(15), (8, 8))


def test_overlay_draws_the_image_then_the_heat():
    image = torch.rand(1, 8, 8)
    alpha = torch.softmax(torch.randn(16), 0)
    ax = plot_attention_on_image(image, alpha, title="7")
    assert len(ax.images) == 2
    assert np.allclose(ax.images[0].get_array(), image[0].numpy())
    assert np.allclose(ax.images[1].get_array(), upsample_attention(alpha, (8, 8)))
    assert ax.get_title() == "7"
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        plot_attention_on_image(torch.rand(2, 8, 8), alpha)


def test_gallery_one_panel_per_image():
    fig = plot_attention_gallery(torch.rand(5, 1, 8, 8), torch.rand(5, 16), titles=list("abcde"),
                                 columns=3)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == list("abcde")
    with pytest.raises(ValueError, match="5 images but 4 attention rows"):
        plot_attention_gallery(torch.rand(5, 1, 8, 8), torch.rand(4, 16))


def test_confusion_matrix_counts_and_drawing():
    truth, guess = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]
    counts = confusion_matrix(truth, guess)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    ax = plot_confusion_matrix(truth, guess, normalize=True)
    assert np.allclose(ax.images[0].get_array()[2], [1 / 3, 0, 2 / 3])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(truth, guess, class_names=["a", "b"])
    # a negative id would wrap around and one past num_classes would be an IndexError: both refused
    with pytest.raises(ValueError, match=r"labels must be class ids in 0\.\.2, got values -1\.\.2"):
        confusion_matrix([-1, 0, 2], [0, 0, 2])
    with pytest.raises(ValueError, match=r"predictions must be class ids in 0\.\.1"):
        confusion_matrix([0, 1], [0, 2], num_classes=2)


def _history(offset=0.0):
    h = History()
    h.steps = [{"step": s, "loss": 1 / s + offset, "lr": 0.1} for s in range(1, 51)]
    h.evals = [{"step": s, "accuracy": s / 50} for s in (10, 20, 30, 40, 50)]
    h.metric = "accuracy"
    return h


def test_curves_plot_the_recorded_values():
    ax = plot_curves(_history(), "accuracy", where="evals")
    x, y = ax.lines[0].get_data()
    assert list(x) == [10, 20, 30, 40, 50] and np.allclose(y, [0.2, 0.4, 0.6, 0.8, 1.0])
    ax = plot_curves({"attention": _history(), "mean": _history(1.0)}, "loss")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["attention", "mean"]
    assert np.allclose(ax.lines[1].get_data()[1] - ax.lines[0].get_data()[1], 1.0)
    with pytest.raises(KeyError, match="never recorded"):
        plot_curves(_history(), "bleu", where="evals")


def test_history_figure_matplotlib_and_plotly():
    fig = plot_history(_history().to_dict(), window=1)
    left, right = fig.axes[:2]
    assert np.allclose(left.lines[0].get_data()[1], [1 / s for s in range(1, 51)])
    assert right.get_title() == "validation accuracy"
    pfig = history_figure(_history(), window=1)
    assert isinstance(pfig, go.Figure)
    assert [t.name for t in pfig.data] == ["loss", "accuracy"]
    assert list(pfig.data[1].y) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_alignment_heatmap_marks_truth_and_argmax():
    alpha = torch.zeros(3, 6)
    alpha[0, 1] = alpha[1, 3] = alpha[2, 2] = 1.0  # 2 padding columns at the end
    ax = plot_alignment(alpha, list("ab-d"), list("xyz"), true_positions=[1, -1, 3])
    assert ax.images[0].get_array().shape == (3, 4)   # padding trimmed
    argmax, truth = ax.collections[0], ax.collections[1]
    assert argmax.get_offsets().tolist() == [[1, 0], [3, 1], [2, 2]]
    assert truth.get_offsets().tolist() == [[1, 0], [3, 2]]  # undefined row not marked
    with pytest.raises(ValueError, match="one entry per output row"):
        plot_alignment(alpha, list("ab-d"), list("xyz"), true_positions=[1, 2])
    heavy_pad = torch.full((3, 6), 1 / 6)
    with pytest.raises(ValueError, match="columns past the 4 source labels"):
        plot_alignment(heavy_pad, list("ab-d"), list("xyz"))


def test_viz_leaves_global_state_alone():
    before = dict(plt.rcParams)
    plot_attention_on_image(torch.rand(8, 8), torch.rand(16))
    plot_confusion_matrix([0, 1], [1, 1])
    plot_history(_history())
    assert dict(plt.rcParams) == before
