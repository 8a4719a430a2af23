"""Lesson 10's LoRA widget: pick a rank and the projections LoRA adapts, read off what it bought.

The grid of results is precomputed (``adapt.sweeps.lora_grid``: one fine-tuning run per rank ×
targets), so moving the controls only looks up and redraws: instant in a notebook, and the static
site's build can enumerate every state (``viz/site_states.py`` records any ``interactive_output``).
``draw_lora_grid`` is the drawing on its own, for tests and reuse.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt

_KEYS = ("accuracy", "retention", "trainable")


def _check_grid(grid: Mapping) -> tuple[list[int], list[str]]:
    """(ranks, target names) of a grid {(rank, "q+v"): {"accuracy", "retention", "trainable"}}."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty dict {(rank, targets): {'accuracy', 'retention', 'trainable'}}")
    for key, cell in grid.items():
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], int) and isinstance(key[1], str)):
            raise ValueError(f"grid keys are (rank, targets) like (4, 'q+v'), got {key!r}")
        missing = [k for k in _KEYS if k not in cell]
        if missing:
            raise ValueError(f"grid entry {key} lacks {missing}")
    ranks = sorted({r for r, _ in grid})
    targets = list(dict.fromkeys(t for _, t in grid))
    absent = [(r, t) for r in ranks for t in targets if (r, t) not in grid]
    if absent:
        raise ValueError(f"the grid must hold every rank × targets pair; missing {absent}")
    return ranks, targets


def draw_lora_grid(grid: Mapping, rank: int, targets: str, *, ax=None):
    """Accuracy on the new task against rank, one line per target set; the chosen run ringed.

    Returns the Axes; its title names the chosen run and its numbers."""
    ranks, names = _check_grid(grid)
    if (rank, targets) not in grid:
        raise ValueError(f"no run for rank {rank} on {targets!r}; ranks {ranks}, targets {names}")
    ax = ax or plt.subplots(figsize=(6, 3.6))[1]
    for name in names:
        ax.plot(ranks, [grid[(r, name)]["accuracy"] for r in ranks], marker="o", label=name,
                lw=2.5 if name == targets else 1, alpha=1 if name == targets else 0.5)
    chosen = grid[(rank, targets)]
    ax.scatter([rank], [chosen["accuracy"]], s=220, facecolors="none", edgecolors="red", linewidths=2, zorder=3)
    ax.set(xscale="log", xticks=ranks, xticklabels=[str(r) for r in ranks], ylim=(0, 1.05),
           xlabel="LoRA rank r", ylabel="token accuracy on the new task")
    ax.set_title(f"rank {rank} on {targets}: {chosen['trainable']:,} trainable, accuracy {chosen['accuracy']:.3f}, "
                 f"retention {chosen['retention']:.3f}", fontsize=9)
    ax.legend(title="targets", fontsize="small")
    return ax


def lora_grid_explorer(grid: Mapping) -> widgets.VBox:
    """Build (not display) the widget: a rank menu and a targets menu over the precomputed grid."""
    ranks, names = _check_grid(grid)
    rank_menu = widgets.Dropdown(options=ranks, value=ranks[len(ranks) // 2], description="rank")
    target_menu = widgets.Dropdown(options=names, value=names[-1], description="targets")

    def redraw(rank: int, targets: str) -> None:
        draw_lora_grid(grid, rank, targets)
        plt.show()

    output = widgets.interactive_output(redraw, {"rank": rank_menu, "targets": target_menu})
    return widgets.VBox([widgets.HBox([rank_menu, target_menu]), output])


__all__ = ["draw_lora_grid", "lora_grid_explorer"]
