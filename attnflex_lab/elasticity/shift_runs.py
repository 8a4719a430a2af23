"""Running the ID/ED/reversal experiment (``shifts``) over families and seeds, and sweeping what moves
the ED cost (attention temperature, an entropy bonus, overtraining, an attention reset)."""

from __future__ import annotations

import math

import numpy as np

from ..profiles import by_profile
from .metrics import mean_ci
from .shifts import SHIFT_FAMILIES, SHIFT_KINDS, ShiftConfig, run_shifts


def shift_config(family: str, seed: int, profile_name: str, **overrides) -> ShiftConfig:
    """The ID/ED config for a family in a profile (smoke: shorter stages)."""
    sizes = by_profile(smoke=dict(max_steps=120), cpu={}, gpu={}, profile_name=profile_name)
    return ShiftConfig(family=family, seed=seed, **{**sizes, **overrides})


def mean_interval(values) -> dict:
    """{"mean": x̄, "ci": [lo, hi]} with the 95 % t-interval over seeds (ci None for one seed)."""
    mean, half = mean_ci(values)
    ci = None if math.isnan(half) else [round(mean - half, 2), round(mean + half, 2)]
    return {"mean": round(mean, 2), "ci": ci}


def run_shift_experiment(families: tuple[str, ...] = SHIFT_FAMILIES, seeds: int | list[int] = 5,
                         profile_name: str = "cpu", progress: bool = False, **overrides):
    """Every family × seed through acquisition and the three shifts: (summary, runs).

    summary = {"setting": "shifts", "profile", "seeds", "lr", "results": {family: {kind: {"mean", "ci"}}}}
    over steps to criterion after the shift (a run that never reached it counts as ``max_steps``).
    """
    unknown = [f for f in families if f not in SHIFT_FAMILIES]
    if unknown:
        raise ValueError(f"unknown shift families {unknown}; choose from {', '.join(SHIFT_FAMILIES)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("need at least one seed")
    from tqdm.auto import tqdm

    runs, results = [], {}
    with tqdm(total=len(families) * len(seed_list), desc="ID/ED runs", disable=not progress) as bar:
        for fam in families:
            fam_runs = []
            for seed in seed_list:
                cfg = shift_config(fam, seed, profile_name, **overrides)
                fam_runs.append(run_shifts(cfg))
                bar.update()
            runs += fam_runs
            results[fam] = {k: mean_interval([r.steps(k, cfg.max_steps) for r in fam_runs]) for k in SHIFT_KINDS}
    summary = {"setting": "shifts", "profile": profile_name, "seeds": len(seed_list), "lr": cfg.lr,
               "results": results}
    return summary, runs


def ed_cost(seeds, profile_name: str = "cpu", **overrides) -> np.ndarray:
    """Per seed, the ED cost of the ``dimension`` family: steps to criterion after an ED shift minus
    after an ID shift, both from the same trained state (paired). (seeds,) float."""
    costs = []
    for seed in seeds:
        cfg = shift_config("dimension", seed, profile_name, **overrides)
        run = run_shifts(cfg, kinds=("ID", "ED"))
        costs.append(run.steps("ED", cfg.max_steps) - run.steps("ID", cfg.max_steps))
    return np.array(costs)


def sweep_ed_cost(knob: str, values, seeds, profile_name: str = "cpu", **fixed) -> dict:
    """{value: {"mean", "ci"}} of the ED cost as one knob of ``ShiftConfig`` moves, the rest ``fixed``."""
    if knob not in ShiftConfig.__dataclass_fields__:
        raise ValueError(f"{knob!r} is not a ShiftConfig field")
    return {v: mean_interval(ed_cost(seeds, profile_name, **{**fixed, knob: v})) for v in values}


def shift_curve_grid(temperatures, overtrains, seeds, profile_name: str = "cpu", after_criterion: int = 30) -> dict:
    """For the lesson's widget: {(τ, overtrain): {"ID"/"ED": (steps,) expected accuracy after the shift,
    mean over seeds, cut to the shortest seed; "attention_ID"/"attention_ED": (steps, D) mean α;
    "steps_ID"/"steps_ED": mean steps to criterion}} for the ``dimension`` family."""
    grid = {}
    for tau in temperatures:
        for extra in overtrains:
            runs = [run_shifts(shift_config("dimension", s, profile_name, temperature=tau, overtrain=extra),
                               kinds=("ID", "ED"), after_criterion=after_criterion) for s in seeds]
            cell = {}
            for kind in ("ID", "ED"):
                n = min(len(r.shifts[kind].expected_acc) for r in runs)
                cell[kind] = np.mean([r.shifts[kind].expected_acc[:n] for r in runs], 0)                # (n,)
                cell[f"attention_{kind}"] = np.mean([r.shifts[kind].attention[:n] for r in runs], 0)   # (n, D)
                cell[f"steps_{kind}"] = float(np.mean([r.shifts[kind].steps for r in runs]))
            grid[(tau, extra)] = cell
    return grid
