"""Alignment heatmaps: what a seq2seq decoder attended to, with the true alignment marked."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._prep import to_numpy
from .heatmap import plot_attention


def plot_alignment(weights, source: Sequence[str], target: Sequence[str], *,
                   true_positions=None, ax: plt.Axes | None = None, title: str | None = None,
                   show_argmax: bool = True, trim: bool = True, colorbar: bool = True) -> plt.Axes:
    """Heatmap of α (T, S): rows are output characters, columns source characters.

    ``true_positions`` (T,) marks each row's true source position with a square (-1 = undefined,
    not marked); ``show_argmax`` puts a dot on the most-attended position. ``trim`` drops padding
    columns beyond ``len(source)``; ``colorbar=False`` leaves the colour scale (fixed at 0..1) out,
    e.g. for a row of panels. Returns the Axes.
    """
    alpha = to_numpy(weights)
    source, target = list(source), list(target)
    if alpha.ndim != 2:
        raise ValueError(f"weights must be one (T, S) map, got shape {alpha.shape}")
    if trim and alpha.shape[1] > len(source):
        dropped = alpha[:, len(source):]
        if dropped.sum() > 1e-6:
            raise ValueError(f"weights give {dropped.sum():.3g} total weight to the "
                             f"{dropped.shape[1]} columns past the {len(source)} source labels")
        alpha = alpha[:, :len(source)]                   # (T, S) -> (T, len(source))
    ax = plot_attention(alpha, target, source, ax=ax, title=title, vmin=0.0, vmax=1.0,
                        colorbar=colorbar)
    ax.set_xlabel("source character")
    ax.set_ylabel("output character")
    rows = np.arange(alpha.shape[0])
    if show_argmax:
        ax.scatter(alpha.argmax(1), rows, s=12, c="white", edgecolors="black", linewidths=0.5,
                   label="argmax α", zorder=3)
    if true_positions is not None:
        truth = to_numpy(true_positions, "true_positions").astype(int)
        if truth.shape != (alpha.shape[0],):
            raise ValueError(f"true_positions must have one entry per output row "
                             f"({alpha.shape[0]},), got shape {truth.shape}")
        if (truth >= alpha.shape[1]).any():
            raise ValueError(f"true_positions reach {truth.max()}, beyond the {alpha.shape[1]} "
                             f"source positions")
        known = truth >= 0
        ax.scatter(truth[known], rows[known], s=110, marker="s", facecolors="none",
                   edgecolors="red", linewidths=1.5, label="true source", zorder=4)
    if show_argmax or true_positions is not None:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8,
                  frameon=False)
    return ax


def snapshot_readout(weights, true_positions, n_source: int) -> str:
    """One line: the mean weight on the true source character over the rows that have one (against
    the uniform 1/n), and how many of those rows have their argmax exactly there."""
    alpha, truth = to_numpy(weights), to_numpy(true_positions, "true_positions").astype(int)
    rows = np.flatnonzero(truth >= 0)                                  # rows with a copied character
    if alpha.ndim != 2 or truth.shape != (alpha.shape[0],) or not len(rows):
        raise ValueError(f"need one (T, S) map and true positions (T,) with at least one >= 0, got "
                         f"{alpha.shape} and {truth.shape}")
    on_truth = alpha[rows, truth[rows]]                                 # (rows,)
    exact = int((alpha[rows].argmax(1) == truth[rows]).sum())
    return (f"weight on the true character: {on_truth.mean():.3f} on average (uniform: 1/{n_source} = "
            f"{1 / n_source:.3f}); argmax exactly there in {exact} of {len(rows)} rows")


def alignment_snapshots(snapshots: Sequence, steps: Sequence[int], source: Sequence[str],
                        target: Sequence[str], *, true_positions=None):
    """A slider over attention maps recorded during training (e.g. ``RecordAttention``).

    ``snapshots`` holds one (T, S) map per recording and ``steps`` the training step of each; the
    slider (description "snapshot") picks one and ``plot_alignment`` draws it, with the true
    alignment marked and ``snapshot_readout`` printed above it (what a learner can predict: the
    weight on the true character starts near 1/n). Core ipywidgets only (7 and 8). Returns the VBox.
    """
    import ipywidgets as widgets  # only the explorer needs it

    if len(snapshots) != len(steps) or not snapshots:
        raise ValueError(f"need one step per snapshot and at least one, got {len(snapshots)} "
                         f"snapshots and {len(steps)} steps")
    slider = widgets.IntSlider(value=0, min=0, max=len(snapshots) - 1, description="snapshot",
                               continuous_update=False)

    def redraw(index: int) -> None:
        if true_positions is not None:
            print(snapshot_readout(snapshots[index], true_positions, len(source)))
        fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
        plot_alignment(snapshots[index], source, target, true_positions=true_positions, ax=ax,
                       title=f"step {steps[index]} (snapshot {index + 1} of {len(snapshots)})")
        plt.show()

    return widgets.VBox([slider, widgets.interactive_output(redraw, {"index": slider})])
