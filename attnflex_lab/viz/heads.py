"""Reading heads: every layer's every head in one grid (static and plotly), and an explorer widget.

Input is the stack a transformer's hooks give: (L, H, T, S), or (L, B, H, T, S) with ``batch=``
(``run_with_cache(model, x)[1].patterns()`` returns the latter). The static grid is ``plot_heads``
from ``viz.heatmap``; this module adds the interactive versions and a per-head summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._prep import prepare_stack
from .heatmap import plot_attention, plot_heads


def plot_head_grid(maps, queries: Sequence | None = None, keys: Sequence | None = None, *,
                   batch: int | None = None, title: str | None = None, **kwargs) -> plt.Figure:
    """Static layer × head grid (rows = layers, columns = heads); see ``plot_heads`` for options."""
    stack, _, _ = prepare_stack(maps, queries, keys, batch=batch)
    names = [f"layer {i}" for i in range(stack.shape[0])]
    return plot_heads(stack, queries, keys, layer_names=names, title=title, **kwargs)


def head_grid_figure(maps, queries: Sequence | None = None, keys: Sequence | None = None, *,
                     batch: int | None = None, title: str | None = None,
                     colorscale: str = "Viridis", panel_px: int = 180) -> go.Figure:
    """Plotly layer × head grid with hover (layer, head, query, key, weight); returns the Figure."""
    stack, query_labels, key_labels = prepare_stack(maps, queries, keys, batch=batch)  # (L, H, T, S)
    num_layers, num_heads = stack.shape[:2]
    titles = [f"L{layer} H{head}" for layer in range(num_layers) for head in range(num_heads)]
    fig = make_subplots(rows=num_layers, cols=num_heads, subplot_titles=titles,
                        horizontal_spacing=0.02, vertical_spacing=0.06)
    # Positions, not labels, go on the axes: repeated labels ("a", "a") would merge rows in plotly.
    rows, cols = np.arange(stack.shape[2]), np.arange(stack.shape[3])
    hover_text = [[f"query {i} ({query_labels[i]}) → key {j} ({key_labels[j]})" for j in cols]
                  for i in rows]
    for layer in range(num_layers):
        for head in range(num_heads):
            fig.add_trace(go.Heatmap(
                z=stack[layer, head], x=cols, y=rows, text=hover_text, zmin=0.0,
                zmax=float(stack.max()), colorscale=colorscale, showscale=(layer == head == 0),
                hovertemplate=f"layer {layer}, head {head}<br>%{{text}}<br>weight %{{z:.3f}}"
                              "<extra></extra>"), row=layer + 1, col=head + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False)  # query 0 on top, like imshow
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(width=120 + panel_px * num_heads, height=80 + panel_px * num_layers,
                      title=title, margin=dict(l=20, r=20, t=60, b=20))
    return fig


def head_summary(maps, *, batch: int | None = None) -> np.ndarray:
    """(L, H) mean entropy (nats) of each head's rows: low = focused heads, high = diffuse ones."""
    stack, _, _ = prepare_stack(maps, batch=batch)                         # (L, H, T, S)
    safe = np.where(stack > 0, stack, 1.0)                                 # log 1 = 0 for zero weights
    return -(stack * np.log(safe)).sum(-1).mean(-1)                        # (L, H, T) -> (L, H)


def draw_head_query(stack: np.ndarray, layer: int, head: int, query: int,
                    query_labels: Sequence[str], key_labels: Sequence[str]) -> plt.Figure:
    """One head's map with the chosen query row outlined, beside that query's weights as bars."""
    weights = stack[layer, head]                                           # (T, S)
    fig, (ax_map, ax_bar) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained",
                                         gridspec_kw={"width_ratios": [1.1, 1]})
    plot_attention(weights, query_labels, key_labels, ax=ax_map, vmin=0.0, vmax=1.0,
                   title=f"layer {layer}, head {head}")
    num_keys = weights.shape[1]
    ax_map.add_patch(plt.Rectangle((-0.5, query - 0.5), num_keys, 1, fill=False,
                                   edgecolor="red", linewidth=2))
    ax_bar.bar(np.arange(num_keys), weights[query], color="tab:blue")
    ax_bar.set_xticks(np.arange(num_keys), list(key_labels))
    ax_bar.set_ylim(0, 1)
    ax_bar.set_xlabel("key")
    ax_bar.set_ylabel("weight")
    ax_bar.set_title(f"query {query} ({query_labels[query]})")
    return fig


def head_explorer(maps, queries: Sequence | None = None, keys: Sequence | None = None, *,
                  batch: int | None = None) -> widgets.VBox:
    """Build (not display) a widget: pick a layer, a head and a query; see that head's map and row."""
    stack, query_labels, key_labels = prepare_stack(maps, queries, keys, batch=batch)
    num_layers, num_heads, num_queries, _ = stack.shape
    layer_slider = widgets.IntSlider(value=0, min=0, max=num_layers - 1, description="layer",
                                     continuous_update=False)
    head_slider = widgets.IntSlider(value=0, min=0, max=num_heads - 1, description="head",
                                    continuous_update=False)
    query_menu = widgets.Dropdown(options=[(f"{i}: {label}", i) for i, label in
                                           enumerate(query_labels)], value=0, description="query")

    def redraw(layer: int, head: int, query: int) -> None:
        draw_head_query(stack, layer, head, query, query_labels, key_labels)
        plt.show()

    output = widgets.interactive_output(redraw, {"layer": layer_slider, "head": head_slider,
                                                 "query": query_menu})
    return widgets.VBox([widgets.HBox([layer_slider, head_slider, query_menu]), output])


def text_head_explorer(maps_for, text: str, *, num_layers: int, num_heads: int) -> widgets.VBox:
    """Build (not display) a widget: type an input sequence, pick a layer and a head, see that map.

    ``maps_for(text)`` runs the model on the typed text and returns ``(maps, query_labels,
    key_labels)`` with maps (L, H, T, S) or (L, 1, H, T, S); a ValueError it raises (text the model
    cannot read) is printed instead of a figure. The text box redraws when the learner presses
    Enter or leaves the box (``continuous_update=False``), not on every keystroke.
    """
    text_box = widgets.Text(value=text, description="input", continuous_update=False)
    layer_slider = widgets.IntSlider(value=0, min=0, max=num_layers - 1, description="layer",
                                     continuous_update=False)
    head_slider = widgets.IntSlider(value=0, min=0, max=num_heads - 1, description="head",
                                    continuous_update=False)

    def redraw(text: str, layer: int, head: int) -> None:
        try:
            maps, query_labels, key_labels = maps_for(text)
        except ValueError as err:
            print(f"cannot read {text!r}: {err}")
            return
        stack, query_labels, key_labels = prepare_stack(maps, query_labels, key_labels,
                                                        batch=0 if len(maps.shape) == 5 else None)
        fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
        plot_attention(stack[layer, head], query_labels, key_labels, ax=ax, vmin=0.0, vmax=1.0,
                       title=f"layer {layer}, head {head}")
        plt.show()

    output = widgets.interactive_output(redraw, {"text": text_box, "layer": layer_slider,
                                                 "head": head_slider})
    return widgets.VBox([text_box, widgets.HBox([layer_slider, head_slider]), output])
