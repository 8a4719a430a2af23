"""Nadaraya–Watson kernel regression, explored: a bandwidth slider beside the leave-one-out curve.

``leave_one_out_mse`` is the math (each training point predicted from all the others: attention
with the diagonal masked out); ``draw_bandwidth`` the drawing; ``explore_bandwidth`` the widget
(core ipywidgets + ``interactive_output`` redrawing matplotlib, so ipywidgets 7 and 8 both work).
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..functional import masked_softmax, nadaraya_watson


def leave_one_out_mse(x_train: torch.Tensor, y_train: torch.Tensor, bandwidth: float) -> float:
    """Mean squared error of predicting each y_j from the other points with bandwidth h."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    n = x_train.shape[0]
    if n < 2 or y_train.shape != x_train.shape:
        raise ValueError(f"need x_train (N,) and y_train (N,) with N >= 2, got "
                         f"{tuple(x_train.shape)} and {tuple(y_train.shape)}")
    diff = x_train[:, None] - x_train[None, :]                        # (N, 1) - (1, N) -> (N, N)
    not_self = ~torch.eye(n, dtype=torch.bool)                        # (N, N): hide each point from itself
    alpha = masked_softmax(-diff**2 / (2 * bandwidth**2), not_self)  # (N, N)
    return ((alpha @ y_train - y_train) ** 2).mean().item()


def draw_bandwidth(x_train, y_train, x_test, y_test, bandwidth: float, h_grid: Sequence[float],
                   loo: Sequence[float]) -> plt.Figure:
    """Left: data, truth and the fit at ``bandwidth``. Right: leave-one-out MSE against h, with the
    current h marked. The fit is the line labelled "Nadaraya–Watson"."""
    fit, _ = nadaraya_watson(x_test, x_train, y_train, bandwidth=bandwidth)   # (M,)
    test_mse = ((fit - y_test) ** 2).mean().item()
    fig, (ax_fit, ax_loo) = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    ax_fit.plot(x_train, y_train, ".", color="gray", label="data")
    ax_fit.plot(x_test, y_test, "k--", label="truth f(x)")
    ax_fit.plot(x_test, fit, "C1", lw=2, label="Nadaraya–Watson")
    ax_fit.set_title(f"h = {bandwidth:.3g}, test MSE {test_mse:.3f}")
    ax_fit.legend(fontsize=8)
    ax_loo.semilogx(list(h_grid), list(loo), "o-", label="leave-one-out MSE")
    ax_loo.axvline(bandwidth, color="C1", ls=":", label=f"h = {bandwidth:.3g}")
    ax_loo.set_xlabel("bandwidth h")
    ax_loo.set_ylabel("leave-one-out MSE")
    ax_loo.legend(fontsize=8)
    return fig


def explore_bandwidth(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                      y_test: torch.Tensor, *, bandwidth: float = 0.2,
                      log10_range: tuple[float, float] = (-2.0, 0.5)) -> widgets.VBox:
    """Build (not display) the explorer: a "bandwidth h" log slider redraws the fit and moves the
    marker along the leave-one-out curve (computed once, on a grid spanning the slider)."""
    low, high = log10_range
    h_grid = torch.logspace(low, high, 30).tolist()
    loo = [leave_one_out_mse(x_train, y_train, h) for h in h_grid]
    slider = widgets.FloatLogSlider(value=bandwidth, base=10, min=low, max=high, step=0.05,
                                    description="bandwidth h", readout_format=".3g",
                                    continuous_update=False, style={"description_width": "initial"})

    def redraw(bandwidth: float) -> None:
        draw_bandwidth(x_train, y_train, x_test, y_test, bandwidth, h_grid, loo)
        plt.show()

    output = widgets.interactive_output(redraw, {"bandwidth": slider})
    return widgets.VBox([slider, output])


__all__ = ["draw_bandwidth", "explore_bandwidth", "leave_one_out_mse"]
