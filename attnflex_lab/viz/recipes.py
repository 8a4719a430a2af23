"""Lesson 09's figures: learning curves of recipe variants over seeds, the reliability diagram, and a
widget that picks a recipe and redraws its saved curves (no retraining).

Saved curves are plain data: ``{recipe: {variant: [(steps, values), ...one per seed]}}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np


def _check_curves(curves: Mapping) -> None:
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty dict {variant: [(steps, values), ...]}")
    for name, runs in curves.items():
        if not runs:
            raise ValueError(f"variant {name!r} has no runs")
        for steps, values in runs:
            if len(steps) != len(values):
                raise ValueError(f"variant {name!r}: {len(steps)} steps but {len(values)} values")


def mean_curve(runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, sd) over seeds, on the steps every seed reached (early stopping ends some sooner)."""
    shortest = min(len(steps) for steps, _ in runs)
    steps = np.asarray(runs[0][0][:shortest], float)
    values = np.array([np.asarray(v[:shortest], float) for _, v in runs])  # (seeds, points)
    sd = values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(shortest)
    return steps, values.mean(axis=0), sd


def plot_recipe_curves(curves: Mapping, *, ax=None, ylabel: str = "", title: str = "",
                       logy: bool = False):
    """One line per variant (mean over seeds) with a ±1 sd band; returns the Axes."""
    _check_curves(curves)
    ax = ax if ax is not None else plt.figure(figsize=(6, 3.5)).gca()
    for name, runs in curves.items():
        steps, mean, sd = mean_curve(runs)
        (line,) = ax.plot(steps, mean, label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(steps, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_reliability_diagram(bins: Mapping, *, ax=None, label: str = "model"):
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration; returns the Axes.

    ``bins`` is ``metrics.reliability_bins(...)``; empty bins are left out. Bars below the diagonal
    are overconfident, above it underconfident."""
    edges = np.asarray(bins["edges"], float)
    accuracy = np.asarray(bins["accuracy"], float)
    if len(edges) != len(accuracy) + 1:
        raise ValueError(f"bins have {len(edges)} edges for {len(accuracy)} bins (want one more)")
    ax = ax if ax is not None else plt.figure(figsize=(4, 4)).gca()
    filled = np.asarray(bins["count"]) > 0
    ax.bar(edges[:-1][filled], accuracy[filled], width=np.diff(edges)[filled], align="edge",
           alpha=0.6, edgecolor="black", label=label)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def recipe_curve_explorer(saved: Mapping, *, ylabels: Mapping | None = None) -> widgets.VBox:
    """Build (not display) a widget: pick a recipe, see its saved curves (mean ± sd over seeds).

    ``saved``: ``{recipe: {variant: [(steps, values), ...]}}``; ``ylabels``: {recipe: axis label}."""
    if not isinstance(saved, Mapping) or not saved:
        raise ValueError("saved must be a non-empty dict {recipe: {variant: [(steps, values), ...]}}")
    for curves in saved.values():
        _check_curves(curves)
    ylabels = dict(ylabels or {})
    menu = widgets.Dropdown(options=list(saved), value=next(iter(saved)), description="recipe")
    log_box = widgets.Checkbox(value=False, description="log y")

    def redraw(recipe: str, logy: bool) -> None:
        plot_recipe_curves(saved[recipe], ylabel=ylabels.get(recipe, ""), title=recipe, logy=logy)
        plt.show()

    output = widgets.interactive_output(redraw, {"recipe": menu, "logy": log_box})
    return widgets.VBox([widgets.HBox([menu, log_box]), output])
