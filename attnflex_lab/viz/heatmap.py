"""Static attention heatmaps with matplotlib: one map, or a grid of heads (and layers).

Rows are queries (what is looking), columns are keys (what is looked at), so row i of the image is
the distribution query i spreads over the keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.patches import Patch, Rectangle

from ._prep import prepare, prepare_stack

MAX_AUTO_TICKS = 30  # beyond this many unnamed positions, let matplotlib choose the ticks
MASKED_COLOUR = "#d9d9d9"   # masked cells: light grey, hatched; clearly not a colour of the weight scale
MASKED_LABEL = "masked (may not attend)"


def plot_attention(weights, queries: Sequence | None = None, keys: Sequence | None = None, *,
                   ax: plt.Axes | None = None, head: int | None = None, batch: int | None = None,
                   mask=None, cmap: str = "viridis", annotate: bool = False, fmt: str | None = None,
                   title: str | None = None, vmin: float | None = 0.0, vmax: float | None = None,
                   colorbar: bool = True) -> plt.Axes:
    """Draw one (T, S) attention map as a heatmap and return its Axes.

    ``weights`` is (T, S), (H, T, S) or (B, H, T, S) (a tensor or an array); ``head=``/``batch=``
    pick the map. ``queries``/``keys`` label the rows/columns and must match T and S.
    ``mask`` (bool, True = may attend, broadcastable to ``weights``: e.g. ``modules.causal_mask``
    or a (B, 1, 1, S) padding mask) draws the cells that may not attend as masked: hatched grey,
    with a legend entry, never as a learned 0. ``annotate=True`` writes each weight in its cell
    with format ``fmt`` (default ".2f"; masked cells stay blank). ``vmin``/``vmax`` fix the colour
    scale (``vmax=None``: the largest unmasked weight); pass ``vmin=None`` to draw raw scores,
    which may be negative.
    """
    fmt = _check_fmt(fmt, annotate)
    data = prepare(weights, queries, keys, head=head, batch=batch, mask=mask)
    if ax is None:
        num_queries, num_keys = data.weights.shape
        size = (min(2 + 0.45 * num_keys, 12), min(1.5 + 0.4 * num_queries, 10))  # inches
        _, ax = plt.subplots(figsize=size, layout="constrained")
    colours = plt.get_cmap(cmap).with_extremes(bad=MASKED_COLOUR)  # a copy: the registered map stays
    hidden = np.zeros(data.weights.shape, dtype=bool) if data.allowed is None else ~data.allowed
    shown = np.ma.masked_array(data.weights, mask=hidden)  # (T, S); masked cells drawn as "bad"
    image = ax.imshow(shown, cmap=colours, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest")
    if data.allowed is not None:
        _hatch_masked(ax, hidden)
    _label_axes(ax, data.queries, data.keys, named=(queries is not None, keys is not None))
    if annotate:
        _annotate(ax, image, shown, fmt)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="weight")
    if title is not None:
        ax.set_title(title)
    return ax


def _check_fmt(fmt: str | None, annotate: bool) -> str:
    if fmt is None:
        return ".2f"
    if not annotate:
        raise ValueError(f"fmt={fmt!r} formats the annotations; pass annotate=True as well")
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format spec string such as '.2f' or '.0%', got "
                        f"{type(fmt).__name__}")
    try:
        format(0.5, fmt)
    except ValueError:
        raise ValueError(f"fmt={fmt!r} is not a format spec for a number; try '.2f', '.3g' or '.0%'"
                         ) from None
    return fmt


def _hatch_masked(ax: plt.Axes, hidden: np.ndarray) -> None:
    """Hatch every masked cell (one collection for all) and say what the hatching means."""
    cells = [Rectangle((col - 0.5, row - 0.5), 1, 1) for row, col in np.argwhere(hidden)]
    ax.add_collection(PatchCollection(cells, facecolor="none", edgecolor="#8c8c8c", hatch="//",
                                      linewidth=0, label=MASKED_LABEL))
    legend_patch = Patch(facecolor=MASKED_COLOUR, edgecolor="#8c8c8c", hatch="//", label=MASKED_LABEL)
    ax.legend(handles=[legend_patch], loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              frameon=False, borderaxespad=0.2)


def plot_heads(weights, queries: Sequence | None = None, keys: Sequence | None = None, *,
               layer_names: Sequence[str] | None = None, batch: int | None = None,
               cmap: str = "viridis", vmin: float | None = 0.0, vmax: float | None = None,
               title: str | None = None, panel_size: float = 2.2) -> plt.Figure:
    """A grid of attention maps, one row per layer and one column per head; returns the Figure.

    ``weights``: (H, T, S) for one layer, (L, H, T, S) or a list of L (H, T, S) maps for many
    layers; with ``batch=``, per-layer maps may be (B, H, T, S). All panels share one colour scale
    (``vmax=None``: the largest weight anywhere) so heads can be compared; one colorbar is added.
    Tick labels are drawn on the left column and the bottom row only.
    """
    stack, query_labels, key_labels = prepare_stack(weights, queries, keys, batch=batch)
    num_layers, num_heads = stack.shape[:2]
    if layer_names is None:
        layer_names = [f"layer {i}" for i in range(num_layers)] if num_layers > 1 else [""]
    elif isinstance(layer_names, str) or len(layer_names) != num_layers:
        got = "one string" if isinstance(layer_names, str) else f"{len(layer_names)} names"
        raise ValueError(f"weights have {num_layers} layers, but layer_names has {got}")
    vmax = float(stack.max()) if vmax is None else vmax
    fig, axes = plt.subplots(num_layers, num_heads, squeeze=False, layout="constrained",
                             figsize=(1 + panel_size * num_heads, 0.6 + panel_size * num_layers))
    named = (queries is not None, keys is not None)
    for layer in range(num_layers):
        for head in range(num_heads):
            ax = axes[layer, head]
            image = ax.imshow(stack[layer, head], cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                              interpolation="nearest")
            _label_axes(ax, query_labels, key_labels, named=named, axis_titles=False)
            if head > 0:
                ax.tick_params(labelleft=False)
            if layer < num_layers - 1:
                ax.tick_params(labelbottom=False)
            prefix = f"{layer_names[layer]} · " if layer_names[layer] else ""
            ax.set_title(f"{prefix}head {head}", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), label="weight", shrink=0.8)
    fig.supxlabel("key")
    fig.supylabel("query")
    if title is not None:
        fig.suptitle(title)
    return fig


def _label_axes(ax: plt.Axes, query_labels: list[str], key_labels: list[str], *,
                named: tuple[bool, bool], axis_titles: bool = True) -> None:
    """One tick per position when labels were given (or there are few positions)."""
    queries_named, keys_named = named
    if queries_named or len(query_labels) <= MAX_AUTO_TICKS:
        ax.set_yticks(np.arange(len(query_labels)), query_labels)
    if keys_named or len(key_labels) <= MAX_AUTO_TICKS:
        rotation = 90 if max(len(label) for label in key_labels) > 2 else 0
        ax.set_xticks(np.arange(len(key_labels)), key_labels, rotation=rotation)
    if axis_titles:
        ax.set_xlabel("key")
        ax.set_ylabel("query")


def _annotate(ax: plt.Axes, image, weights: np.ma.MaskedArray, fmt: str) -> None:
    """Write each weight in its cell, dark on light cells and light on dark ones; masked cells stay blank."""
    rgba = image.cmap(image.norm(weights.filled(0.0)))  # (T, S, 4)
    luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])  # (T, S, 3) @ (3,) -> (T, S)
    hidden = np.ma.getmaskarray(weights)
    for (row, col), value in np.ndenumerate(weights.data):
        if hidden[row, col]:
            continue
        color = "black" if luminance[row, col] > 0.5 else "white"
        ax.text(col, row, format(value, fmt), ha="center", va="center", fontsize=8, color=color)
