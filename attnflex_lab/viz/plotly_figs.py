"""Interactive attention heatmaps with plotly: hover a cell to read its query, key and weight.

Plain ``go.Figure`` (no FigureWidget), so it renders in JupyterLab, Colab and static HTML alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ._prep import prepare


def attention_figure(weights, queries: Sequence | None = None, keys: Sequence | None = None, *,
                     head: int | None = None, batch: int | None = None,
                     colorscale: str = "Viridis", title: str | None = None,
                     zmin: float | None = 0.0, zmax: float | None = None,
                     decimals: int = 3) -> go.Figure:
    """A plotly heatmap of one (T, S) attention map; returns the ``go.Figure``.

    Same inputs as ``plot_attention``. The axes are numbered positions with the labels as tick
    text, so repeated tokens ("the" twice) stay separate columns; hover text names the query, the
    key and the weight (``decimals`` digits).
    """
    data = prepare(weights, queries, keys, head=head, batch=batch)
    num_queries, num_keys = data.weights.shape
    hover = [[f"query {i}: {data.queries[i]}<br>key {j}: {data.keys[j]}<br>"
              f"weight: {data.weights[i, j]:.{decimals}f}" for j in range(num_keys)]
             for i in range(num_queries)]                    # (T, S) strings
    heatmap = go.Heatmap(
        z=data.weights, x=np.arange(num_keys), y=np.arange(num_queries), text=hover,
        hovertemplate="%{text}<extra></extra>", colorscale=colorscale,
        zmin=zmin, zmax=float(data.weights.max()) if zmax is None else zmax,
        colorbar={"title": {"text": "weight"}},
    )
    fig = go.Figure(heatmap)
    fig.update_xaxes(title_text="key", tickmode="array", tickvals=list(range(num_keys)),
                     ticktext=data.keys, side="bottom")
    # Query 0 on top, as in the matplotlib heatmap and in a matrix.
    fig.update_yaxes(title_text="query", tickmode="array", tickvals=list(range(num_queries)),
                     ticktext=data.queries, autorange="reversed")
    fig.update_layout(title=title, width=min(250 + 40 * num_keys, 900),
                      height=min(200 + 35 * num_queries, 800), margin={"t": 50 if title else 20})
    return fig
