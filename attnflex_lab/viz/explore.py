"""An ipywidgets explorer: how temperature, the 1/√d scale and a mask reshape attention weights.

Core widgets and ``interactive_output`` redrawing a matplotlib figure only, so it works with
ipywidgets 7 (Colab) and 8 (JupyterLab 4). ``explore_attention`` returns the widget; the notebook
displays it. ``explorer_weights`` and ``draw_explorer`` are the math and the drawing on their own,
so they can be tested (and reused) without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import functional
from .._validate import check_floating
from ..modules import causal_mask
from ._prep import make_labels, to_numpy
from .heatmap import plot_attention

MASK_KINDS = ("none", "causal", "padding")


def explorer_mask(kind: str, num_queries: int, num_keys: int, pad_keys: int) -> torch.Tensor | None:
    """Boolean (T, S) mask, True = may attend; None for "none".

    causal: the package's ``modules.causal_mask``: query i sees keys j <= i + S - T (the last query
    sees every key, as when the queries are the last T of S positions). padding: the last
    ``pad_keys`` keys are padding, seen by nobody.
    """
    if kind == "none":
        return None
    if kind == "causal":
        return causal_mask(num_queries, num_keys)                            # (T, S)
    if kind == "padding":
        _check_pad_keys(pad_keys, num_keys)
        mask = torch.ones(num_queries, num_keys, dtype=torch.bool)           # (T, S)
        mask[:, num_keys - pad_keys:] = False
        return mask
    raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")


def _check_pad_keys(pad_keys: int, num_keys: int) -> None:
    """Padding must hide some keys but leave at least one, or the mask means nothing (or NaN)."""
    if not 0 < pad_keys < num_keys:
        raise ValueError(f"pad_keys must be between 1 and S - 1 = {num_keys - 1}, got {pad_keys}")


def explorer_weights(q, k, *, temperature: float, scaled: bool, mask: str = "none",
                     pad_keys: int = 1) -> torch.Tensor:
    """α = masked_softmax(s · q kᵀ / τ, mask), s = 1/√d when ``scaled`` else 1. Returns (T, S).

    ``q`` (T, D) and ``k`` (S, D) are tensors or arrays; the weights come from the reference
    ``functional.attention`` (the keys serve as values: only the weights are kept).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    q = _as_tensor(q, "q", like=k)
    k = _as_tensor(k, "k", like=q)
    scale = (functional.default_scale(q) if scaled else 1.0) / temperature
    mask_tensor = explorer_mask(mask, q.shape[-2], k.shape[-2], pad_keys)  # (T, S) or None
    _, weights = functional.attention(q, k, k, mask=mask_tensor, scale=scale)  # (T, S)
    return weights


def _as_tensor(x, name: str, like=None) -> torch.Tensor:
    """A tensor as it is; an array or nested list of numbers as a tensor of ``like``'s floating
    dtype when ``like`` is a floating tensor, else float64 (a clear TypeError for non-numbers)."""
    if isinstance(x, torch.Tensor):
        return x
    tensor = torch.from_numpy(np.ascontiguousarray(to_numpy(x, name)))  # float64
    if isinstance(like, torch.Tensor) and like.is_floating_point():
        tensor = tensor.to(like.dtype)
    return tensor


def draw_explorer(weights, query: int, queries: Sequence[str], keys: Sequence[str], *,
                  title: str = "", cmap: str = "viridis", mask=None) -> plt.Figure:
    """Heatmap of all weights (the chosen query's row outlined) beside a bar chart of that row.

    ``mask`` (bool (T, S), True = may attend) draws the masked cells as masked, not as zeros.
    """
    weights = to_numpy(weights)                                          # (T, S)
    if weights.ndim != 2 or not 0 <= query < weights.shape[0]:
        raise ValueError(f"draw_explorer needs weights (T, S) and a query in 0..T-1, got weights "
                         f"of shape {weights.shape} and query={query}")
    fig, (ax_map, ax_bar) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained",
                                         gridspec_kw={"width_ratios": [1.1, 1]})
    plot_attention(weights, queries, keys, ax=ax_map, cmap=cmap, vmin=0.0, vmax=1.0, title=title,
                   mask=mask)
    num_keys = weights.shape[1]
    ax_map.add_patch(plt.Rectangle((-0.5, query - 0.5), num_keys, 1, fill=False,
                                   edgecolor="red", linewidth=2))
    positions = np.arange(num_keys)
    ax_bar.bar(positions, weights[query], color="tab:blue")
    ax_bar.set_xticks(positions, list(keys), rotation=90 if max(map(len, keys)) > 2 else 0)
    ax_bar.set_ylim(0, 1)
    ax_bar.set_xlabel("key")
    ax_bar.set_ylabel("weight")
    ax_bar.set_title(f"query {query} ({queries[query]}): weights over the keys")
    return fig


def explore_attention(q: torch.Tensor, k: torch.Tensor, queries: Sequence | None = None,
                      keys: Sequence | None = None, *, temperature: float = 1.0,
                      log10_temperature_range: tuple[float, float] = (-1.5, 1.0),
                      pad_keys: int | None = None, cmap: str = "viridis") -> widgets.VBox:
    """Build (not display) the explorer for queries q (T, D) and keys k (S, D).

    Controls: a "temperature" slider (log scale), a "scale by 1/√d" checkbox, the query whose
    weights the bar chart shows, and a mask (none / causal / padding of the last ``pad_keys``
    keys, default a quarter of them). Each change redraws the heatmap and the bar chart.
    """
    q, k = _as_tensor(q, "q"), _as_tensor(k, "k")
    check_floating(q=q)  # each on its own: both become float64 below, so their dtypes may differ
    check_floating(k=k)
    if q.dim() != 2 or k.dim() != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(f"explore_attention needs q (T, D) and k (S, D) with one D, got "
                         f"q {tuple(q.shape)} and k {tuple(k.shape)}")
    q, k = q.detach().cpu().double(), k.detach().cpu().double()
    num_queries, num_keys = q.shape[0], k.shape[0]
    query_labels = make_labels(queries, num_queries, "query")
    key_labels = make_labels(keys, num_keys, "key")
    pad_keys = max(1, num_keys // 4) if pad_keys is None else pad_keys
    _check_pad_keys(pad_keys, num_keys)  # now, not at the first pick of "padding" in the menu
    low, high = log10_temperature_range
    wide_label = {"description_width": "initial"}  # show "temperature" in full (ipywidgets 7 and 8)
    temperature_slider = widgets.FloatLogSlider(
        value=temperature, base=10, min=low, max=high, step=0.05, description="temperature",
        readout_format=".3g", continuous_update=False, style=wide_label)
    scaled_box = widgets.Checkbox(value=True, description="scale by 1/√d")
    query_menu = widgets.Dropdown(options=[(f"{i}: {label}", i) for i, label in
                                           enumerate(query_labels)], value=0, description="query")
    mask_menu = widgets.Dropdown(options=list(MASK_KINDS), value="none", description="mask")

    def redraw(temperature: float, scaled: bool, query: int, mask: str) -> None:
        weights = explorer_weights(q, k, temperature=temperature, scaled=scaled, mask=mask,
                                   pad_keys=pad_keys)                     # (T, S)
        draw_explorer(weights, query, query_labels, key_labels, cmap=cmap,
                      mask=explorer_mask(mask, num_queries, num_keys, pad_keys),
                      title=f"τ = {temperature:.3g}, d = {q.shape[1]}, mask: {mask}")
        plt.show()

    output = widgets.interactive_output(redraw, {"temperature": temperature_slider,
                                                 "scaled": scaled_box, "query": query_menu,
                                                 "mask": mask_menu})
    # One flat VBox (the controls and the figure are siblings) keeps the figure easy to find.
    return widgets.VBox([widgets.HBox([temperature_slider, scaled_box]),
                         widgets.HBox([query_menu, mask_menu]), output])

