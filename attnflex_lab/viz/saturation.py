"""Softmax saturation: how the width d of q and k, with or without the 1/√d scale, shrinks the
softmax Jacobian J = diag(α) − ααᵀ (and with it every gradient that reaches the scores).

``saturation_curve`` is the measurement (mean ‖J‖_F over random queries and keys, per width);
``explore_saturation`` is an ipywidgets explorer (core widgets + ``interactive_output`` redrawing
a matplotlib figure, so ipywidgets 7 and 8 both work) over the same math, ``draw_saturation`` its
drawing on its own, testable without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..functional import softmax_jacobian


def _check_widths(widths: Sequence[int]) -> list[int]:
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be positive integers, got {widths}")
    return widths


def saturation_weights(q: torch.Tensor, k: torch.Tensor, width: int, *, scaled: bool) -> torch.Tensor:
    """α = softmax(q[:d] · k[:, :d]ᵀ · s), s = 1/√d when ``scaled`` else 1: one query's (S,) weights
    from the first d coordinates of q (D,) and k (S, D), so every width shares the same draws."""
    if not 1 <= width <= q.shape[-1]:
        raise ValueError(f"width must be between 1 and D = {q.shape[-1]}, got {width}")
    scores = k[:, :width] @ q[:width]                       # (S, d) @ (d,) -> (S,)
    if scaled:
        scores = scores / math.sqrt(width)
    return torch.softmax(scores, dim=-1)                    # (S,)


def saturation_curve(widths: Sequence[int], *, scaled: bool, num_keys: int = 10,
                     num_queries: int = 200, seed: int = 0) -> torch.Tensor:
    """Mean Frobenius norm ‖diag(α) − ααᵀ‖_F over ``num_queries`` random queries, one per width.

    q and k have independent N(0, 1) entries (float64), drawn once at the largest width; a width d
    uses their first d coordinates. Returns a (len(widths),) tensor.
    """
    widths = _check_widths(widths)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(num_queries, max(widths), generator=gen, dtype=torch.float64)            # (N, D)
    k = torch.randn(num_queries, num_keys, max(widths), generator=gen, dtype=torch.float64)  # (N, S, D)
    norms = []
    for width in widths:
        scores = (k[..., :width] @ q[:, :width, None]).squeeze(-1)   # (N, S, d) @ (N, d, 1) -> (N, S)
        if scaled:
            scores = scores / math.sqrt(width)
        jac = softmax_jacobian(torch.softmax(scores, dim=-1))        # (N, S, S)
        norms.append(torch.linalg.matrix_norm(jac).mean())           # ‖J‖_F, averaged over queries
    return torch.stack(norms)


def draw_saturation(weights: torch.Tensor, widths: Sequence[int], curves: dict[str, torch.Tensor],
                    width: int, scaled: bool) -> plt.Figure:
    """Three panels: one query's weights α, its Jacobian J, and mean ‖J‖_F against d with the
    current width marked on the curve in use."""
    jac = softmax_jacobian(weights)                                   # (S, S)
    fig, (ax_w, ax_j, ax_c) = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
    ax_w.bar(np.arange(len(weights)), weights.numpy(), color="tab:blue")
    ax_w.set_ylim(0, 1)
    ax_w.set_xlabel("key j")
    ax_w.set_ylabel("weight α_j")
    ax_w.set_title(f"d = {width}, {'scaled by 1/√d' if scaled else 'unscaled'}")
    limit = 0.25                                                      # |J_ij| ≤ 1/4 always
    ax_j.imshow(jac.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax_j.set_title(f"J = diag(α) − ααᵀ,  ‖J‖_F = {torch.linalg.matrix_norm(jac):.3f}")
    ax_j.set_xlabel("j")
    ax_j.set_ylabel("i")
    for name, norms in curves.items():
        ax_c.loglog(widths, norms.numpy(), "o-", label=name)
    current = curves["scaled" if scaled else "unscaled"][list(widths).index(width)]
    ax_c.plot([width], [current.item()], "r*", markersize=14, label="this d")
    ax_c.set_xlabel("width d")
    ax_c.set_ylabel("mean ‖J‖_F")
    ax_c.legend(fontsize=8)
    return fig


def explore_saturation(*, num_keys: int = 8, max_log2_width: int = 10, seed: int = 0) -> widgets.VBox:
    """Build (not display) the explorer: a "log2 d" slider and a "scale by 1/√d" checkbox redraw
    one query's weights, its softmax Jacobian and where it sits on the ‖J‖_F-against-d curves."""
    if max_log2_width < 1:
        raise ValueError(f"max_log2_width must be at least 1, got {max_log2_width}")
    widths = [2**i for i in range(max_log2_width + 1)]
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(widths[-1], generator=gen, dtype=torch.float64)            # (D,)
    k = torch.randn(num_keys, widths[-1], generator=gen, dtype=torch.float64)  # (S, D)
    curves = {name: saturation_curve(widths, scaled=name == "scaled", num_keys=num_keys, seed=seed)
              for name in ("unscaled", "scaled")}
    log2_slider = widgets.IntSlider(value=4, min=0, max=max_log2_width, description="log2 d",
                                    continuous_update=False)
    scaled_box = widgets.Checkbox(value=False, description="scale by 1/√d")

    def redraw(log2_width: int, scaled: bool) -> None:
        width = 2**log2_width
        draw_saturation(saturation_weights(q, k, width, scaled=scaled), widths, curves, width, scaled)
        plt.show()

    output = widgets.interactive_output(redraw, {"log2_width": log2_slider, "scaled": scaled_box})
    return widgets.VBox([widgets.HBox([log2_slider, scaled_box]), output])


__all__ = ["draw_saturation", "explore_saturation", "saturation_curve", "saturation_weights"]
