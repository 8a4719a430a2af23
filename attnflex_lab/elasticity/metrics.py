"""Switching metrics: pure functions on arrays (lists, numpy arrays or tensors), each with its formula.

Notation: a_t is the accuracy at training step (or trial) t, s the first step under the new rule,
w a window length. Curves are 1-D; distributions are probability vectors over the last axis.
"""

from __future__ import annotations

import math

import numpy as np


def _curve(name: str, acc) -> np.ndarray:
    a = np.asarray(acc, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D curve, got shape {a.shape}")
    return a


def _check_switch(acc: np.ndarray, switch_step: int, before: int, after: int) -> None:
    if not isinstance(switch_step, (int, np.integer)):
        raise TypeError(f"switch_step must be an int, got {type(switch_step).__name__}")
    if switch_step - before < 0 or switch_step + after > len(acc):
        raise ValueError(f"need {before} steps before and {after} after switch_step={switch_step}, "
                         f"but the curve has {len(acc)} steps")


def switch_cost(acc, switch_step: int, window: int) -> float:
    """Accuracy lost at a switch: mean(a[s−w : s]) − mean(a[s : s+w])."""
    a = _curve("acc", acc)
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    _check_switch(a, switch_step, window, window)
    return float(a[switch_step - window:switch_step].mean() - a[switch_step:switch_step + window].mean())


def moving_average(acc, window: int) -> np.ndarray:
    """m_t = mean(a[t−w+1 : t+1]) (trailing; the first w−1 entries average what exists)."""
    a = _curve("acc", acc)
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    c = np.concatenate([[0.0], np.cumsum(a)])
    t = np.arange(1, len(a) + 1)
    lo = np.maximum(0, t - window)
    return (c[t] - c[lo]) / (t - lo)


def recovery_steps(acc, switch_step: int, level: float = 0.95, window: int = 1) -> float:
    """Steps after the switch until the moving accuracy first reaches level × pre-switch accuracy.

    pre = mean(a[s−w : s]); the moving accuracy m_t averages a over the trailing window *within the
    new phase* (steps s..t only, so pre-switch steps never count as recovered). Returns the smallest
    r ≥ 0 with m_{s+r} ≥ level · pre (0 = no dip at all), or ``math.inf`` if it never gets there.
    On a step function (1 before s, 0 for d steps, then 1) with w = 1 and level = 1 it is exactly d;
    with a window w it is d + w − 1 (the window must fill with recovered steps).
    """
    a = _curve("acc", acc)
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level!r}")
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    _check_switch(a, switch_step, window, 0)
    pre = a[switch_step - window:switch_step].mean()
    after = moving_average(a[switch_step:], window)
    hit = np.nonzero(after >= level * pre - 1e-12)[0]
    return float(hit[0]) if len(hit) else math.inf


def perseverative_rate(choice, old_target, new_target) -> float:
    """Share of errors that pick the old rule's answer: #{c ≠ new, c = old} / #{c ≠ new}.

    ``choice``, ``old_target``, ``new_target``: same-shape integer arrays (one entry per trial).
    NaN when there are no errors. With K candidates and errors spread evenly the rate is 1/(K−1).
    """
    c, o, n = (np.asarray(x) for x in (choice, old_target, new_target))
    if not (c.shape == o.shape == n.shape):
        raise ValueError(f"choice {c.shape}, old_target {o.shape} and new_target {n.shape} must have one shape")
    errors = c != n
    if not errors.any():
        return float("nan")
    return float((errors & (c == o)).sum() / errors.sum())


def perseverative_errors(choice, old_target, new_target, window: int) -> tuple[int, float]:
    """Perseverative errors as the WCST counts them: only after the first negative feedback under the new rule.

    ``choice``, ``old_target``, ``new_target``: same-shape integer arrays ``(S, ...)`` whose axis 0 is the
    steps after the switch, in order (a step is one trial, or a batch of trials answered before one
    update). The feedback after step t is negative when any of its answers is wrong; with t₀ the first
    such step, the counted steps are t₀+1 … t₀+``window`` (what exists of them). Before t₀'s feedback,
    keeping the old rule is not yet perseveration: nothing has said it is wrong.

    Returns (count, rate): the errors there that pick the old rule's answer, #{c ≠ new, c = old}, and
    their share of all errors there (NaN with no errors, or no negative feedback at all).
    """
    c, o, n = (np.asarray(x) for x in (choice, old_target, new_target))
    if not (c.shape == o.shape == n.shape) or c.ndim < 1:
        raise ValueError(f"choice {c.shape}, old_target {o.shape} and new_target {n.shape} must have one shape "
                         "(S, ...) with steps first")
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    wrong = (c != n).reshape(len(c), -1)                       # (S, trials per step)
    negative = np.nonzero(wrong.any(1))[0]
    if not len(negative):
        return 0, float("nan")
    counted = slice(negative[0] + 1, negative[0] + 1 + window)
    errors = wrong[counted]
    old = (c == o).reshape(len(c), -1)[counted] & errors
    return int(old.sum()), (float(old.sum() / errors.sum()) if errors.any() else float("nan"))


def errors_by_lag(correct, since_switch, max_lag: int) -> np.ndarray:
    """Error rate 1 − mean(correct) over the trials k = 0..max_lag trials after a switch (NaN where none).

    ``correct`` (expected accuracy per trial, in [0, 1]) and ``since_switch`` are same-shape arrays."""
    c, since = np.asarray(correct, dtype=float), np.asarray(since_switch)
    if c.shape != since.shape:
        raise ValueError(f"correct {c.shape} and since_switch {since.shape} must have one shape")
    return np.array([1.0 - c[since == k].mean() if (since == k).any() else np.nan for k in range(max_lag + 1)])


def excess_errors_by_lag(model_correct, observer_correct, since_switch, max_lag: int) -> np.ndarray:
    """Errors in excess of the Bayes observer at each lag k: err_model(k) − err_observer(k), same trials.

    Positive where the learner errs more than the best possible learner would have on those trials; the
    observer's own errors (at a switch nobody can know yet) are subtracted out."""
    return errors_by_lag(model_correct, since_switch, max_lag) - errors_by_lag(observer_correct, since_switch, max_lag)


def set_loss_rate(correct, since_switch, run: int = 3) -> float:
    """The WCST's set-loss errors: the share of errors among trials that follow >= ``run`` correct answers
    in a row under the current rule (the learner had the rule, then lost it).

    ``correct`` and ``since_switch`` are (..., T) arrays over trials; the streak restarts at each switch
    (since_switch == 0). NaN when no trial follows such a streak.
    """
    c, since = np.asarray(correct, dtype=bool), np.asarray(since_switch)
    if c.shape != since.shape or c.ndim < 1:
        raise ValueError(f"correct {c.shape} and since_switch {since.shape} must have one shape (..., T)")
    streak = np.zeros(c.shape, dtype=int)                      # correct answers in a row before trial t
    for t in range(1, c.shape[-1]):
        grown = np.where(c[..., t - 1], streak[..., t - 1] + 1, 0)
        streak[..., t] = np.where(since[..., t] == 0, 0, grown)
    eligible = streak >= run
    return float((~c[eligible]).mean()) if eligible.any() else float("nan")


def retention(correct_on_old_rule) -> float:
    """Accuracy on the old rule measured after training on the new one, with no training: mean(1[correct])."""
    c = np.asarray(correct_on_old_rule, dtype=float)
    if c.size == 0:
        raise ValueError("retention needs at least one evaluated example")
    return float(c.mean())


def savings(first_steps: float, relearn_steps: float) -> float:
    """Ebbinghaus savings: 1 − relearn / first. 1 = nothing to relearn, 0 = as slow as the first time."""
    if not first_steps > 0:
        raise ValueError(f"first_steps must be positive, got {first_steps!r}")
    if relearn_steps < 0:
        raise ValueError(f"relearn_steps must be non-negative, got {relearn_steps!r}")
    return float(1.0 - relearn_steps / first_steps)


def _distributions(name: str, p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim == 0:
        raise ValueError(f"{name} must be a probability vector (or a batch of them), got a scalar")
    if (p < -1e-9).any() or not np.allclose(p.sum(-1), 1.0, atol=1e-5):
        raise ValueError(f"{name} must be non-negative with rows summing to 1; row sums are "
                         f"{np.round(p.sum(-1), 4).ravel()[:5]}")
    return np.clip(p, 0.0, None)


def entropy(p, base: float = 2.0) -> np.ndarray | float:
    """H(p) = −Σ_i p_i log_b p_i over the last axis (0 log 0 = 0)."""
    p = _distributions("p", p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    h = -terms.sum(-1) / math.log(base)
    return float(h) if np.ndim(h) == 0 else h


def attention_shift(p_before, p_after) -> float:
    """Jensen–Shannon divergence in bits, averaged over rows:

        JS(p, q) = H((p + q) / 2) − (H(p) + H(q)) / 2,   in [0, 1] with base 2,

    symmetric, 0 iff p = q, 1 iff p and q have disjoint support.
    """
    p, q = _distributions("p_before", p_before), _distributions("p_after", p_after)
    if p.shape != q.shape:
        raise ValueError(f"p_before {p.shape} and p_after {q.shape} must have the same shape")
    js = entropy((p + q) / 2) - (entropy(p) + entropy(q)) / 2
    return float(np.clip(np.mean(js), 0.0, 1.0))


def attention_on_target(weights, target) -> float:
    """Mean attention mass on the right item: mean_b w[b, target_b]. weights (B, K), target (B,)."""
    w = _distributions("weights", weights)
    t = np.asarray(target)
    if w.ndim != 2 or t.shape != (w.shape[0],):
        raise ValueError(f"weights must be (B, K) and target (B,); got {w.shape} and {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= w.shape[1]):
        raise ValueError(f"target indices must lie in 0..{w.shape[1] - 1}, got {t.min()}..{t.max()}")
    return float(w[np.arange(len(t)), t].mean())


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t-interval: x̄ ± t_{n−1} · s / √n (half-width NaN for n < 2).

    Infinite values (a run that never recovered) make the mean infinite; they are not dropped.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {x.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mean = float(x.mean())
    if x.size < 2 or not np.isfinite(x).all():
        return mean, float("nan")
    from scipy import stats  # imported here: only intervals need it

    t = stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)  # two-sided Student-t quantile, any df
    return mean, float(t * x.std(ddof=1) / math.sqrt(x.size))
