"""Pictures of tiled attention: which tile of (Q, K) is being combined, and the running max and sum.

``draw_tile_step`` draws one step of ``flash.trace_tiles`` (returns the Figure, never shows it);
``tile_explorer`` wraps it in a core-ipywidgets slider with ``interactive_output``, which works in
ipywidgets 7 (Colab) and 8 (JupyterLab 4).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from ..functional import attention
from ..kernels.flash import trace_tiles
from ..modules import causal_mask


def tile_story(q: torch.Tensor, k: torch.Tensor, *, causal: bool = True, block_q: int = 4,
               block_k: int = 4) -> dict:
    """Everything the figure needs: the trace, the final weights (T, S), each row's final max and sum."""
    steps = trace_tiles(q, k, causal=causal, block_q=block_q, block_k=block_k)
    T, S = q.shape[0], k.shape[0]
    mask = causal_mask(T, S) if causal else None
    _, weights = attention(q.unsqueeze(0), k.unsqueeze(0), k.new_zeros(1, S, 1), mask)   # (1, T, S)
    scores = (q @ k.T) / q.shape[1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    final_m = scores.amax(-1)                                                   # (T,)
    final_l = (scores - final_m.unsqueeze(-1)).exp().sum(-1)                    # (T,)
    return {"steps": steps, "weights": weights[0], "final_m": final_m, "final_l": final_l,
            "blocks": (block_q, block_k)}


def draw_tile_step(story: dict, step: int, fig: plt.Figure | None = None) -> plt.Figure:
    """Left: the final weights with tiles done (grey), the current tile (red) and tiles never computed
    (hatched). Right: for the current query rows, the share of each row's softmax sum folded in so far,
    l · e^(m − m_final) / l_final, which reaches 1 at the row block's last tile."""
    steps = story["steps"]
    if not 0 <= step < len(steps):
        raise ValueError(f"step must be in 0..{len(steps) - 1}, got {step}")
    fig = fig or plt.figure(figsize=(9, 3.6))
    fig.clear()
    ax_w, ax_l = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    weights = story["weights"]
    T, S = weights.shape
    block_q, block_k = story["blocks"]
    ax_w.imshow(weights.numpy(), cmap="viridis", vmin=0)
    visited = {(s["rows"], s["cols"]) for s in steps}
    for i0 in range(0, T, block_q):
        for j0 in range(0, S, block_k):
            rows, cols = (i0, min(i0 + block_q, T)), (j0, min(j0 + block_k, S))
            if (rows, cols) not in visited:
                ax_w.add_patch(Rectangle((j0 - .5, i0 - .5), cols[1] - j0, rows[1] - i0, fill=False,
                                         hatch="//", edgecolor="white", linewidth=0))
    for s in steps[:step]:
        (i0, i1), (j0, j1) = s["rows"], s["cols"]
        ax_w.add_patch(Rectangle((j0 - .5, i0 - .5), j1 - j0, i1 - i0, fill=False, edgecolor="0.7", lw=1))
    current = steps[step]
    (i0, i1), (j0, j1) = current["rows"], current["cols"]
    ax_w.add_patch(Rectangle((j0 - .5, i0 - .5), j1 - j0, i1 - i0, fill=False, edgecolor="red", lw=2.5))
    ax_w.set_title(f"step {step + 1}/{len(steps)}: Q rows {i0}..{i1 - 1} × K cols {j0}..{j1 - 1}")
    ax_w.set_xlabel("key j")
    ax_w.set_ylabel("query i")
    rows = torch.arange(i0, i1)
    share = current["l"] * torch.exp(current["m"] - story["final_m"][i0:i1]) / story["final_l"][i0:i1]
    ax_l.barh(rows.tolist(), share.nan_to_num().tolist(), color="tab:orange")
    ax_l.axvline(1.0, color="black", lw=1, ls="--")
    for r, m in zip(rows.tolist(), current["m"].tolist(), strict=True):
        ax_l.text(1.02, r, f"m = {m:.2f}", va="center", fontsize=8)
    ax_l.set_yticks(rows.tolist())
    ax_l.set_xlim(0, 1.35)
    ax_l.set_ylim(i1 - 0.5, i0 - 0.5)
    ax_l.set_xlabel("share of the row's softmax sum seen")
    ax_l.set_title("running sum l (rescaled) and max m")
    fig.tight_layout()
    return fig


def tile_explorer(q: torch.Tensor, k: torch.Tensor, *, causal: bool = True, block_q: int = 4, block_k: int = 4):
    """A slider over the steps of the tiled forward for one head (q (T, D), k (S, D))."""
    import ipywidgets as widgets

    story = tile_story(q.detach().cpu().double(), k.detach().cpu().double(), causal=causal,
                       block_q=block_q, block_k=block_k)
    slider = widgets.IntSlider(value=0, min=0, max=len(story["steps"]) - 1, description="step",
                               continuous_update=False)

    def redraw(step: int) -> None:
        draw_tile_step(story, step)
        plt.show()

    output = widgets.interactive_output(redraw, {"step": slider})
    return widgets.VBox([slider, output])


__all__ = ["draw_tile_step", "tile_explorer", "tile_story"]
