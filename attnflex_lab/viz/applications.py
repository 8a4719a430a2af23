"""Figures for lesson 11's applications, and one widget to pick an example and see its attention.

- ``plot_lag_attention``: weight per lag of a forecaster's window, seasonal lags marked.
- ``plot_history_attention``: weight per history item of a click model, the known relevant item marked.
- ``plot_word_attention``: the words of a text on coloured boxes, darker = more attention; words
  the model saw as <unk> marked.
- ``example_picker(draw, n)``: an IntSlider and ``interactive_output`` that calls ``draw(i)``
  (which draws into a new figure) and shows it; core ipywidgets only (7 and 8).

Each plot takes ``ax=None`` and returns the Axes; none calls ``plt.show()`` or changes global state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from ._prep import to_numpy


def _weights_1d(weights, name: str = "weights") -> np.ndarray:
    w = np.asarray(to_numpy(weights, name), dtype=np.float64)
    if w.ndim != 1 or not np.isfinite(w).all():
        raise ValueError(f"{name} must be a finite 1-D array, got shape {w.shape}")
    return w


def plot_lag_attention(weights, *, season: int | None = None, ax=None, title: str = ""):
    """Bars of weight per lag; ``weights[k-1]`` is lag k (k steps back). Lags that are multiples of
    ``season`` are drawn in a second colour, with the uniform weight 1/L as a dashed line."""
    w = _weights_1d(weights)
    ax = ax or plt.subplots(figsize=(8, 2.8))[1]
    lags = np.arange(1, len(w) + 1)
    seasonal = (lags % season == 0) if season else np.zeros(len(w), bool)
    ax.bar(lags, w, color=np.where(seasonal, "tab:red", "tab:blue"))
    uniform = ax.axhline(1 / len(w), color="grey", ls="--", lw=1, label="uniform 1/L")
    ax.set(xlabel="lag (steps back)", ylabel="attention weight", title=title)
    handles = [uniform] + ([Patch(color="tab:red", label=f"multiples of {season}")] if season else [])
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    return ax


def plot_history_attention(weights, items: Sequence, *, relevant: int = -1, ax=None, title: str = ""):
    """Bars of weight per history item (labelled by id); the known relevant one in red."""
    w = _weights_1d(weights)
    if len(items) != len(w):
        raise ValueError(f"weights have {len(w)} entries, but {len(items)} item labels were given")
    ax = ax or plt.subplots(figsize=(8, 2.8))[1]
    colors = ["tab:red" if i == relevant else "tab:blue" for i in range(len(w))]
    ax.bar(np.arange(len(w)), w, color=colors)
    ax.set_xticks(np.arange(len(w)), [str(i) for i in items], rotation=90, fontsize=7)
    ax.set(xlabel="history item (red: the one the click depends on)", ylabel="attention weight", title=title)
    return ax


def plot_word_attention(words: Sequence[str], weights, *, ax=None, title: str = "", per_line: int = 8,
                        unknown: Sequence[bool] | None = None):
    """Each word on a box whose darkness is its weight (scaled by the largest in the text).

    ``unknown`` marks the words the model saw as <unk> (out of its vocabulary): drawn in italics
    with a dashed outline and a "?" after them, since their weight belongs to <unk>, not to them."""
    w = _weights_1d(weights)
    if len(words) != len(w):
        raise ValueError(f"weights have {len(w)} entries, but {len(words)} words were given")
    unknown = [False] * len(w) if unknown is None else [bool(u) for u in unknown]
    if len(unknown) != len(w):
        raise ValueError(f"unknown has {len(unknown)} entries for {len(w)} words")
    ax = ax or plt.subplots(figsize=(9, 0.6 + 0.45 * (1 + len(w) // per_line)))[1]
    strength = w / w.max() if len(w) and w.max() > 0 else w
    cmap = plt.get_cmap("Oranges")
    for i, (word, s, unk) in enumerate(zip(words, strength, unknown, strict=True)):
        row, col = divmod(i, per_line)
        box = {"facecolor": cmap(0.1 + 0.8 * s), "pad": 2,
               **({"edgecolor": "black", "linestyle": "--"} if unk else {"edgecolor": "none"})}
        ax.text(col / per_line, 1 - (row + 0.5) / (1 + (len(w) - 1) // per_line), f"{word}?" if unk else word,
                fontsize=10, ha="left", va="center", transform=ax.transAxes, bbox=box,
                fontstyle="italic" if unk else "normal")
    ax.set_axis_off()
    ax.set_title(title + ("  (dashed, '?': seen as <unk>)" if any(unknown) else ""), fontsize=10, loc="left")
    return ax


def example_picker(draw: Callable[[int], None], num_examples: int, *, description: str = "example"):
    """A slider over 0..num_examples-1; moving it calls ``draw(i)`` and shows the new figure."""
    if num_examples < 1:
        raise ValueError(f"num_examples must be at least 1, got {num_examples}")
    slider = widgets.IntSlider(value=0, min=0, max=num_examples - 1, description=description,
                               continuous_update=False)

    def redraw(index):
        draw(index)
        plt.show()

    out = widgets.interactive_output(redraw, {"index": slider})
    return widgets.VBox([slider, out])
