"""Lesson 08's figures. Each takes ``ax=None`` (a new figure then) and returns the Axes; none calls
``plt.show()`` or changes global state.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import metrics as M
from .tasks import RULES

RULE_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:gray")


def _axes(ax, size=(7, 3)):
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def plot_switch_curve(acc, switch_steps, *, window: int = 10, recovery_window: int = 5, smooth: int = 5,
                      schedule=None, ax=None, title: str | None = None):
    """Accuracy per step with the switches, each switch's cost (bracket) and recovery (shaded) drawn on."""
    acc = np.asarray(acc, dtype=float)
    ax = _axes(ax)
    ax.plot(acc, color="0.75", lw=0.8, label="batch accuracy")
    ax.plot(M.moving_average(acc, smooth), color="k", lw=1.4, label=f"moving mean ({smooth})")
    for i, s in enumerate(switch_steps):
        ax.axvline(s, color="tab:red", ls="--", lw=1)
        if s - window >= 0 and s + window <= len(acc):
            before, after = acc[s - window:s].mean(), acc[s:s + window].mean()
            ax.annotate("", xy=(s + window, after), xytext=(s + window, before),
                        arrowprops=dict(arrowstyle="<->", color="tab:red"))
            ax.text(s + window + 2, (before + after) / 2, f"cost {before - after:.2f}", color="tab:red", fontsize=8)
        r = M.recovery_steps(acc, s, 0.95, recovery_window)
        if np.isfinite(r):
            ax.axvspan(s, s + r, color="tab:orange", alpha=0.15, label="recovery" if i == 0 else None)
        if schedule is not None:
            ax.text(s, 1.03, f"→ {RULES[schedule[i + 1]]}", fontsize=8, transform=ax.get_xaxis_transform())
    ax.set(xlabel="training step", ylabel="accuracy", ylim=(-0.02, 1.02), title=title)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_candidate_attention(weights, *, target=None, ax=None, title: str | None = None):
    """Attention over candidates, one row per example (B, K); the target marked with a dot."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"weights must be (B, K), got shape {w.shape}")
    ax = _axes(ax, (3.2, 3))
    ax.imshow(w, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    if target is not None:
        t = np.asarray(target)
        if t.shape != (w.shape[0],):
            raise ValueError(f"target must have one index per row ({w.shape[0]}), got shape {t.shape}")
        ax.scatter(t, np.arange(len(t)), marker="o", facecolors="none", edgecolors="w", s=60, label="target")
    ax.set(xlabel="candidate", ylabel="example", title=title, xticks=range(w.shape[1]))
    return ax


def plot_rule_attention(steps, mass, *, switch_steps=(), step=None, ax=None, title: str | None = None):
    """Attention mass on the card matching each rule (diagnostic probe), through training: mass (N, 4)."""
    m = np.asarray(mass, dtype=float)
    if m.ndim != 2 or m.shape[1] != len(RULES) + 1 or len(steps) != len(m):
        raise ValueError(f"mass must be (N={len(steps)}, {len(RULES) + 1}), got shape {m.shape}")
    ax = _axes(ax)
    for j, name in enumerate((*RULES, "no match")):
        ax.plot(steps, m[:, j], color=RULE_COLOURS[j], label=name)
    for s in switch_steps:
        ax.axvline(s, color="tab:red", ls="--", lw=1)
    if step is not None:
        ax.axvline(step, color="k", lw=2)
    ax.set(xlabel="training step", ylabel="attention mass", ylim=(-0.02, 1.02), title=title)
    ax.legend(loc="center right", fontsize=8)
    return ax


def plot_family_comparison(summary: dict, metric: str, *, ax=None):
    """Mean ± 95 % CI of one metric for each model family (``run_switching(...).summary["families"]``)."""
    names = list(summary)
    if not names or metric not in summary[names[0]]:
        raise ValueError(f"metric {metric!r} not in the summary; it has {list(summary[names[0]]) if names else []}")
    means = [summary[n][metric]["mean"] for n in names]
    errs = [summary[n][metric]["ci95"] or 0.0 for n in names]
    ax = _axes(ax, (4, 3))
    ax.bar(range(len(names)), means, yerr=errs, capsize=4, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set(title=metric.replace("_", " "))
    return ax


def plot_context_curve(lag, model_acc, observer_acc, *, model_ci=None, others: dict | None = None, ax=None,
                       chance: float | None = None):
    """Accuracy by trials since a switch: the trained model beside the Bayes-optimal observer (and
    ``others``: {label: accuracies by lag}, e.g. a hand-written baseline)."""
    ax = _axes(ax, (5, 3))
    ax.plot(lag, observer_acc, "o-", color="k", label="Bayes observer")
    for i, (label, acc) in enumerate((others or {}).items()):
        if len(acc) != len(lag):
            raise ValueError(f"{label!r} has {len(acc)} accuracies for {len(lag)} lags")
        ax.plot(lag, acc, "^--", color=("tab:purple", "tab:green", "tab:brown")[i % 3], label=label)
    if model_ci is not None:
        ax.errorbar(lag, model_acc, yerr=[c or 0 for c in model_ci], fmt="s-", color="tab:orange",
                    capsize=3, label="transformer")
    else:
        ax.plot(lag, model_acc, "s-", color="tab:orange", label="transformer")
    if chance is not None:
        ax.axhline(chance, color="0.6", ls=":", label="chance")
    ax.set(xlabel="trials since the rule switched", ylabel="accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return ax


def plot_shift_results(results: dict, *, ax=None):
    """Steps to criterion after the shift, families × (ID, ED, reversal), mean with 95 % CI bars
    (``run_shift_experiment(...)[0]["results"]``)."""
    ax = _axes(ax, (6, 3))
    kinds = ("ID", "ED", "reversal")
    for j, (kind, colour) in enumerate(zip(kinds, ("tab:blue", "tab:red", "tab:gray"), strict=True)):
        cells = [results[f][kind] for f in results]
        x = np.arange(len(results)) + (j - 1) * 0.27
        means = np.array([c["mean"] for c in cells])
        err = np.array([[c["mean"] - c["ci"][0], c["ci"][1] - c["mean"]] if c["ci"] else [0, 0] for c in cells]).T
        ax.bar(x, means, width=0.27, yerr=err, capsize=3, color=colour, label=kind)
    ax.set_xticks(range(len(results)), list(results))
    ax.set(ylabel="steps to criterion after the shift")
    ax.legend()
    return ax


def plot_shift_curves(cell: dict, *, criterion: float = 0.9, ax=None, title: str | None = None):
    """ID and ED curves after the shift (``shift_curve_grid`` cell): expected accuracy by step, with
    each mean step to criterion marked."""
    ax = _axes(ax)
    for kind, colour in (("ID", "tab:blue"), ("ED", "tab:red")):
        y = np.asarray(cell[kind])
        ax.plot(np.arange(1, len(y) + 1), y, color=colour, label=f"{kind}: {cell[f'steps_{kind}']:.0f} steps")
        ax.axvline(cell[f"steps_{kind}"], color=colour, ls=":", lw=1)
    ax.axhline(criterion, color="k", lw=0.6, ls="--")
    ax.set(xlabel="steps after the shift", ylabel="expected accuracy", ylim=(0.3, 1.0), title=title)
    ax.legend(loc="lower right")
    return ax
