"""``run_switching``: the whole experiment for one setting, sized by the profile, across seeds.

Setting ``"weights"`` (A) trains every model family through the rule schedule for each seed and
summarises each metric per family as mean ± 95 % CI over seeds (a seed's value is the mean over its
switches). Setting ``"context"`` (B) trains the in-context transformer once per seed and reports its
accuracy by trials since a switch beside the Bayes observer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..device import pick_device
from ..profiles import PROFILES, by_profile
from . import metrics as M
from .context import ContextConfig, evaluate_context, train_context
from .experiment import RunResult, SwitchConfig, run_schedule
from .models import FAMILIES

SWITCH_METRICS = ("switch_cost", "recovery_steps", "perseverative_rate", "retention", "attention_shift")
ENTROPY_COEF = 0.05   # λ for pointer_entropy
REPLAY = 0.25         # pointer_cued_replay: a quarter of a batch's worth of examples from each earlier rule


@dataclass
class SwitchingResult:
    setting: str                   # "weights" or "context"
    profile: str
    seeds: list[int]
    summary: dict                  # what the CLI prints as its JSON line
    curves: list[dict] = field(default_factory=list)   # per-step rows (the CSV)
    runs: list = field(default_factory=list)           # RunResult per (family, seed), or ContextCurve per seed


def weights_config(family: str, seed: int, profile_name: str, **overrides) -> SwitchConfig:
    """The setting-A config for a family in a profile (smoke: shorter practice after criterion, small probes)."""
    sizes = by_profile(smoke=dict(max_phase_steps=300, hold_steps=30, min_phase_steps=20, probe_size=64),
                       cpu={}, gpu={}, profile_name=profile_name)
    extra = ({"entropy_coef": ENTROPY_COEF} if family == "pointer_entropy"
             else {"replay": REPLAY} if family == "pointer_cued_replay" else {})
    return SwitchConfig(family=family, seed=seed, **{**sizes, **extra, **overrides})


LR_GRID = (1e-3, 3e-3, 1e-2)   # one learning-rate grid for every setting-A family (issue 20 §3)
GRID_FAMILIES = ("pointer", "shared_mlp", "mlp", "gru")


def run_lr_grid(families: tuple[str, ...] = GRID_FAMILIES, lrs: tuple[float, ...] = LR_GRID, *,
                seeds=range(3), profile_name: str = "cpu", **overrides) -> dict[str, dict[float, np.ndarray]]:
    """Setting A with every family at every learning rate of one grid: {family: {lr: recovery (seeds,)}}.

    A seed's recovery is the mean of its switches' recovery steps; ``math.inf`` if a switch never
    recovered within ``max_phase_steps`` (so a family that fails at some lr is not averaged away).
    Comparing families at one hand-picked lr credits whichever the lr suits; on a shared grid each
    family shows its own best and worst.
    """
    bad = [lr for lr in lrs if not lr > 0]
    if bad or not lrs:
        raise ValueError(f"lrs must be positive learning rates, got {lrs}")
    out = {}
    for fam in families:
        out[fam] = {}
        for lr in lrs:
            per_seed = []
            for seed in seeds:
                run = run_schedule(weights_config(fam, seed, profile_name, lr=lr, **overrides))
                per_seed.append(float(np.mean([s["recovery_steps"] for s in run.switches])))   # inf stays inf
            out[fam][lr] = np.array(per_seed)                                                  # (seeds,)
    return out


def context_config(seed: int, profile_name: str, **overrides) -> ContextConfig:
    """The setting-B config in a profile. gpu: sized up, not measured on a GPU."""
    sizes = by_profile(smoke=dict(steps=30, warmup=5, batch_size=16),
                       cpu=dict(steps=1000),
                       gpu=dict(steps=6000, d_model=128, n_layers=3, batch_size=128, length=60),
                       profile_name=profile_name)
    return ContextConfig(seed=seed, **{**sizes, **overrides})


def _finite_mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _per_seed(run: RunResult) -> dict:
    """One seed's row: each switch metric averaged over its switches; the accuracy and the attention
    on the target are the *lowest* over the phases, each read on its probe at the end of the phase."""
    row = {m: _finite_mean([s[m] for s in run.switches if not math.isnan(s[m])]) for m in SWITCH_METRICS}
    row["savings"] = run.savings
    row["pre_switch_accuracy"] = float(min(run.probe_acc))
    row["on_target_after_recovery"] = float(min(run.probe_on_target))
    row["reached_criterion"] = float(all(run.reached))
    return row


def _summarise(rows: list[dict]) -> dict:
    out = {}
    for key in rows[0]:
        mean, half = M.mean_ci([r[key] for r in rows])
        out[key] = {"mean": round(mean, 4), "ci95": None if math.isnan(half) else round(half, 4)}
    return out


def run_switching(setting: str = "weights", *, profile_name: str = "cpu", seeds: int | list[int] = 5,
                  families: tuple[str, ...] = FAMILIES, progress: bool = False, live=None,
                  **overrides) -> SwitchingResult:
    """Run setting ``"weights"`` (A) or ``"context"`` (B) for ``seeds`` (a count, or the list of seeds).

    ``live``: a ``training.LiveCurve`` that shows the run in progress (one figure for all runs), or None.

    Setting A's models are tiny (batches of 32, a few thousand weights) and run on the CPU, where
    they are fastest; setting B's transformer trains on ``pick_device()``.
    """
    if setting not in ("weights", "context"):
        raise ValueError(f"setting must be 'weights' or 'context', got {setting!r}")
    if profile_name not in PROFILES:
        raise ValueError(f"profile_name must be one of {PROFILES}, got {profile_name!r}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("need at least one seed")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    from tqdm.auto import tqdm

    if setting == "weights":
        bar = tqdm(total=len(families) * len(seed_list), desc="setting A runs", disable=not progress)
        runs, curves, summary = [], [], {}
        for fam in families:
            rows = []
            for seed in seed_list:
                run = run_schedule(weights_config(fam, seed, profile_name, **overrides), live=live)
                runs.append(run)
                rows.append(_per_seed(run))
                curves += [{"family": fam, "seed": seed, "step": i, "phase": int(run.phase[i]),
                            "accuracy": float(run.acc[i]), "on_target": float(run.on_target[i])}
                           for i in range(len(run.acc))]
                bar.update()
            summary[fam] = _summarise(rows)
        bar.close()
        return SwitchingResult("weights", profile_name, seed_list,
                               {"setting": "weights", "profile": profile_name, "seeds": len(seed_list),
                                "families": summary}, curves, runs)

    cfgs = [context_config(seed, profile_name, **overrides) for seed in seed_list]
    bar = tqdm(total=sum(c.steps for c in cfgs), desc="setting B steps", disable=not progress)
    runs, curves = [], []
    for cfg in cfgs:
        model, losses = train_context(cfg, progress=lambda _: bar.update(), device=pick_device(),
                                      live=live)
        curve = evaluate_context(model, n=by_profile(smoke=200, cpu=2000, gpu=4000, profile_name=profile_name))
        runs.append(curve)
        curves += [{"family": "transformer", "seed": cfg.seed, "step": i, "loss": loss}
                   for i, loss in enumerate(losses)]
    bar.close()
    model_acc = np.array([c.model for c in runs])       # (seeds, lags)
    summary = {"setting": "context", "profile": profile_name, "seeds": len(seed_list),
               "hazard": cfgs[0].hazard, "trials_since_switch": runs[0].lag,
               "model_accuracy": [round(float(x), 4) for x in np.nanmean(model_acc, 0)],
               "model_accuracy_ci95": [None if math.isnan(h) else round(h, 4)
                                       for h in (M.mean_ci(model_acc[:, j])[1] for j in range(model_acc.shape[1]))],
               "observer_accuracy": [round(float(x), 4) for x in np.nanmean([c.observer for c in runs], 0)],
               # errors in excess of the Bayes observer's at each lag: (1 − model) − (1 − observer)
               "model_excess_error": [round(float(x), 4) for x in np.nanmean([c.excess_errors for c in runs], 0)],
               "model_perseverative_rate": round(float(np.nanmean([c.model_perseverative_rate for c in runs])), 4),
               "observer_perseverative_rate":
                   round(float(np.nanmean([c.observer_perseverative_rate for c in runs])), 4),
               "model_set_loss_rate": round(float(np.nanmean([c.model_set_loss_rate for c in runs])), 4),
               "observer_set_loss_rate": round(float(np.nanmean([c.observer_set_loss_rate for c in runs])), 4)}
    return SwitchingResult("context", profile_name, seed_list, summary, curves, runs)
