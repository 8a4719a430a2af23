"""Training curves from a ``History`` (or its ``to_dict()``), in matplotlib and plotly.

Pass one history, or a dict ``{"name": history, ...}`` to compare runs on the same axes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def _as_runs(history) -> dict[str, dict]:
    """{name: history-as-dict}; accepts a History, a to_dict() dict, or a dict of either."""
    if hasattr(history, "to_dict"):
        return {"": history.to_dict()}
    if isinstance(history, dict) and "steps" in history and "evals" in history:
        return {"": history}
    if isinstance(history, dict) and history:
        return {name: _as_runs(h)[""] for name, h in history.items()}
    raise TypeError(f"expected a History, history.to_dict() or a dict of them, "
                    f"got {type(history).__name__}")


def curve(history: dict, key: str, where: str = "steps") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one key from a history dict; a clear error when it was never recorded."""
    if where not in ("steps", "evals"):
        raise ValueError(f"where must be 'steps' or 'evals', got {where!r}")
    records = [r for r in history[where] if key in r]
    if not records:
        known = sorted({k for r in history[where] for k in r} - {"step"})
        raise KeyError(f"{key!r} was never recorded in the {where} records; known keys: {known}")
    return (np.array([r["step"] for r in records]), np.array([r[key] for r in records], float))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (the first points average what exists)."""
    if window <= 1:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.maximum(np.arange(1, len(values) + 1) - window, 0)]) / counts


def plot_curves(history, key: str = "loss", *, where: str = "steps", ax: plt.Axes | None = None,
                window: int = 1, logy: bool = False, title: str | None = None) -> plt.Axes:
    """One key against steps (e.g. ``"loss"``, or ``"accuracy", where="evals"``); returns the Axes."""
    runs = _as_runs(history)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    for name, run in runs.items():
        steps, values = curve(run, key, where)
        marker = "o" if where == "evals" else None
        ax.plot(steps, smooth(values, window), marker=marker, markersize=3, label=name or key)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if logy:
        ax.set_yscale("log")
    if len(runs) > 1:
        ax.legend()
    if title is not None:
        ax.set_title(title)
    return ax


def plot_history(history, *, metric: str | None = None, window: int = 20) -> plt.Figure:
    """Two panels: training loss (smoothed, log scale) and the eval metric; returns the Figure."""
    runs = _as_runs(history)
    first = next(iter(runs.values()))
    metric = metric or first.get("metric") or _first_eval_key(first)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
    plot_curves(history, "loss", ax=left, window=window, logy=True, title="training loss")
    if metric is not None:
        plot_curves(history, metric, where="evals", ax=right, title=f"validation {metric}")
    else:
        right.axis("off")
    return fig


def _first_eval_key(run: dict) -> str | None:
    keys = [k for r in run["evals"] for k in r if k != "step"]
    return keys[0] if keys else None


def history_figure(history, *, metric: str | None = None, window: int = 20):
    """A plotly figure: smoothed training loss and the eval metric (right axis), with hover."""
    import plotly.graph_objects as go

    runs = _as_runs(history)
    fig = go.Figure()
    for name, run in runs.items():
        steps, loss = curve(run, "loss")
        prefix = f"{name} " if name else ""
        fig.add_trace(go.Scatter(x=steps, y=smooth(loss, window), name=f"{prefix}loss",
                                 mode="lines"))
        key = metric or run.get("metric") or _first_eval_key(run)
        if key is not None:
            eval_steps, values = curve(run, key, "evals")
            fig.add_trace(go.Scatter(x=eval_steps, y=values, name=f"{prefix}{key}",
                                     mode="lines+markers", yaxis="y2"))
    fig.update_layout(xaxis_title="step", yaxis={"title": "loss", "type": "log"},
                      yaxis2={"title": "metric", "overlaying": "y", "side": "right"},
                      height=350, margin={"t": 30})
    return fig
