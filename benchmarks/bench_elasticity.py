"""Lesson 08's numbers: the ID/ED/reversal shifts (steps to criterion after the shift, per family, on
one learning-rate grid, and what moves the ED cost), setting A (every family, mean ± 95 % CI over
seeds) and setting B (the in-context transformer by trials since a switch, beside the Bayes observer).

Prints the setting-A table, the setting-B curve and the targets from issue 9 with whether they were
met, then one JSON line. Seconds are wall-clock on this machine, whatever else is running on it.

    .venv/bin/python benchmarks/bench_elasticity.py                       # cpu profile, 5 seeds, B: 3 seeds
    .venv/bin/python benchmarks/bench_elasticity.py --profile gpu --context-seeds 5
    .venv/bin/python benchmarks/bench_elasticity.py --only-shifts      # the ID/ED table alone (~1 min)
    .venv/bin/python benchmarks/bench_elasticity.py --only-variants    # WCST variants, the Bishara fit
    .venv/bin/python benchmarks/bench_elasticity.py --only-lr-grid     # setting A on one learning-rate grid
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from attnflex_lab.elasticity import metrics as M
from attnflex_lab.elasticity.bishara import BisharaChooser, BisharaParams, fit_bishara
from attnflex_lab.elasticity.cli import json_safe
from attnflex_lab.elasticity.models import FAMILIES
from attnflex_lab.elasticity.serial import SERIAL_FAMILIES, run_serial, summarise_serial
from attnflex_lab.elasticity.shift_runs import run_shift_experiment, sweep_ed_cost
from attnflex_lab.elasticity.shifts import SHIFT_FAMILIES, SHIFT_KINDS
from attnflex_lab.elasticity.switching import LR_GRID, run_lr_grid, run_switching
from attnflex_lab.elasticity.variants import (
    FEEDBACK_KINDS,
    SWITCH_KINDS,
    VariantConfig,
    choice_stream,
    observer_errors_by_lag,
)
from attnflex_lab.profiles import by_profile

SHOWN = ("switch_cost", "recovery_steps", "perseverative_rate", "retention", "savings", "attention_shift",
         "pre_switch_accuracy", "on_target_after_recovery")


def wcst_variants(profile: str) -> dict:
    """Setting B as the WCST has it: the Bayes observer's errors by lag for each feedback × switch variant,
    and Bishara et al.'s four parameters fitted by likelihood to simulated choices (right/wrong feedback,
    a switch after 6 correct in a row), with 95 % profile-likelihood intervals."""
    cfgs = [VariantConfig(feedback=f, switch=w) for f in FEEDBACK_KINDS for w in SWITCH_KINDS]
    errors = observer_errors_by_lag(cfgs, n=2000)
    print("\nBayes observer's error rate by trials since a switch (2,000 streams of 40, h 0.05, N 6)")
    for name, err in errors.items():
        print(f"{name:<42}" + "".join(f"{x:>7.3f}" for x in err))
    true = BisharaParams(r=0.3, p=0.8, d=4.0, f=1.5)
    n = by_profile(smoke=40, cpu=100, gpu=200, profile_name=profile)
    s = choice_stream(n, 40, cfgs[3], chooser=BisharaChooser(true, n), gen=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    fit = fit_bishara(s.cards, s.choices, s.right)
    print(f"attentional updating fitted to {fit.n_choices} simulated choices ({time.perf_counter() - t0:.0f} s): "
          + ", ".join(f"{k} {getattr(fit.params, k):.3f} [{lo:.3f}, {hi:.3f}] (true {getattr(true, k)})"
                      for k, (lo, hi) in fit.intervals.items()))
    return {"observer_errors_by_lag": {k: v.round(4).tolist() for k, v in errors.items()},
            "bishara_true": true.vector().tolist(), "bishara_fit": fit.params.vector().round(4).tolist(),
            "bishara_intervals": {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in fit.intervals.items()}}


SHIFT_LRS = (3e-3, 1e-2)   # one grid for every family
ED_KNOBS = (("temperature", (1.0, 0.3, 0.1), {}), ("entropy_bonus", (0.0, 0.05, 0.2), {"temperature": 0.3}),
            ("overtrain", (0, 100, 300), {}), ("reset_attention", (False, True), {"temperature": 0.3}))


def shifts_table(profile: str, seeds: int) -> dict:
    """The flex --setting shifts table at each learning rate of the grid, then the ED-cost sweeps."""
    out = {}
    for lr in SHIFT_LRS:
        t0 = time.perf_counter()
        summary, _ = run_shift_experiment(SHIFT_FAMILIES, seeds=seeds, profile_name=profile, lr=lr)
        print(f"\nID/ED/reversal: steps to criterion after the shift, lr {lr:g}, {seeds} seeds, "
              f"mean [95% CI] ({time.perf_counter() - t0:.0f} s)")
        print(f"{'family':<12}" + "".join(f"{k:>24}" for k in SHIFT_KINDS))
        for fam, cells in summary["results"].items():
            print(f"{fam:<12}" + "".join(f"{c['mean']:>9.1f} [{c['ci'][0]:6.1f}, {c['ci'][1]:6.1f}]"
                                         for c in cells.values()))
        out[f"lr={lr:g}"] = summary
    for knob, values, fixed in ED_KNOBS:
        sweep = sweep_ed_cost(knob, values, range(seeds), profile, **fixed)
        print(f"ED cost (ED − ID steps, paired) of the dimension family vs {knob} {fixed or ''}: "
              + ", ".join(f"{v}: {c['mean']:.1f} [{c['ci'][0]:.1f}, {c['ci'][1]:.1f}]" for v, c in sweep.items()))
        out[f"ed_cost_vs_{knob}"] = {str(v): c for v, c in sweep.items()}
    return out


def serial_table(profile: str, seeds: int, n_switches: int) -> dict:
    """Learning to switch: each metric on the first 3 and the last 3 of n_switches switches, per family."""
    out = {}
    print(f"\nserial switches: {n_switches} switches, {seeds} seeds, mean ± 95% CI over seeds")
    for fam in SERIAL_FAMILIES:
        t0 = time.perf_counter()
        curves, _ = run_serial(fam, range(seeds), n_switches, profile)
        summary = summarise_serial(curves)
        print(f"{fam:<22}" + "   ".join(f"{m} {c['first'][0]:.2f} ± {c['first'][1]:.2f} -> {c['last'][0]:.2f} ± "
                                        f"{c['last'][1]:.2f}" for m, c in summary.items())
              + f"   ({time.perf_counter() - t0:.0f} s)")
        print(f"{'':<22}recovery by switch: " + " ".join(f"{x:.0f}" for x in curves["recovery_steps"].mean(0)))
        out[fam] = {"summary": summary, "recovery_by_switch": curves["recovery_steps"].mean(0).tolist(),
                    "retention_by_switch": curves["retention"].mean(0).tolist()}
    return out


def lr_grid_table(profile: str, seeds: int) -> dict:
    """Setting A with the pointer, the shared scorer, the MLP and the GRU on one learning-rate grid:
    recovery steps after a switch, mean ± 95 % CI over seeds (inf: some seed never recovered)."""
    grid = run_lr_grid(seeds=range(seeds), profile_name=profile)
    print(f"\nsetting A on one learning-rate grid: recovery steps after a switch, {seeds} seeds, mean ± 95% CI")
    print(f"{'family':<22}" + "".join(f"{f'lr {lr:g}':>18}" for lr in LR_GRID))
    out = {}
    for fam, by_lr in grid.items():
        cells = {lr: M.mean_ci(steps) for lr, steps in by_lr.items()}
        print(f"{fam:<22}" + "".join(f"{m:>10.1f} ± {h:<5.1f}" for m, h in cells.values()))
        out[fam] = {f"{lr:g}": {"mean": m, "ci95": h, "per_seed": by_lr[lr].tolist()} for lr, (m, h) in cells.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seeds", type=int, default=5, help="setting A seeds per family")
    parser.add_argument("--context-seeds", type=int, default=3, help="setting B seeds (each trains a transformer)")
    parser.add_argument("--skip-context", action="store_true")
    parser.add_argument("--only-shifts", action="store_true", help="the ID/ED/reversal table and sweeps alone")
    parser.add_argument("--only-serial", action="store_true", help="the serial-switch (learning to switch) table")
    parser.add_argument("--only-variants", action="store_true",
                        help="setting B's WCST variants: observer errors by lag, the attentional-updating fit")
    parser.add_argument("--only-lr-grid", action="store_true",
                        help="setting A: every family's recovery at each learning rate of one grid")
    parser.add_argument("--switches", type=int, default=12, help="switches in the serial schedule")
    args = parser.parse_args()
    print(f"profile={args.profile} cpus={os.cpu_count()} torch={torch.__version__} python={platform.python_version()}")
    if args.only_serial:
        print(json.dumps(json_safe({"serial": serial_table(args.profile, args.seeds, args.switches)})))
        return
    if args.only_lr_grid:
        print(json.dumps(json_safe({"lr_grid": lr_grid_table(args.profile, args.seeds)})))
        return
    if args.only_variants:
        print(json.dumps(json_safe({"wcst_variants": wcst_variants(args.profile)})))
        return
    shifts = shifts_table(args.profile, args.seeds)
    if args.only_shifts:
        print(json.dumps(json_safe({"shifts": shifts})))
        return

    t0 = time.perf_counter()
    a = run_switching("weights", profile_name=args.profile, seeds=args.seeds, families=FAMILIES)
    a_seconds = time.perf_counter() - t0
    table = a.summary["families"]
    print(f"\nsetting A: {args.seeds} seeds, mean ± 95% CI over seeds ({a_seconds:.0f} s)")
    print(f"{'family':<20}" + "".join(f"{m[:18]:>20}" for m in SHOWN))
    for fam in FAMILIES:
        print(f"{fam:<20}" + "".join(f"{table[fam][m]['mean']:>11.3f} ± {table[fam][m]['ci95'] or 0:<6.3f}"
                                     for m in SHOWN))
    reached = all(r.reached[i] and r.probe_acc[i] >= 0.95 for r in a.runs for i in range(len(r.reached)))
    on_target = min(min(r.probe_on_target) for r in a.runs if r.family.startswith("pointer"))
    print(f"target: every family ≥ 0.95 on every rule before its switch: {'met' if reached else 'NOT met'}")
    print(f"target: pointers ≥ 0.9 attention on the target after recovery: lowest {on_target:.3f} "
          f"({'met' if on_target >= 0.9 else 'NOT met'})")
    out = {"shifts": shifts, "setting_a": a.summary, "setting_a_seconds": round(a_seconds, 1)}

    if not args.skip_context:
        t0 = time.perf_counter()
        b = run_switching("context", profile_name=args.profile, seeds=args.context_seeds)
        b_seconds = time.perf_counter() - t0
        s = b.summary
        print(f"\nsetting B: hazard {s['hazard']}, {args.context_seeds} seeds ({b_seconds:.0f} s)")
        print(f"{'trials since switch':<22}" + "".join(f"{k:>7}" for k in s["trials_since_switch"]))
        print(f"{'transformer':<22}" + "".join(f"{x:>7.3f}" for x in s["model_accuracy"]))
        print(f"{'  ± 95% CI':<22}" + "".join(f"{(x or 0):>7.3f}" for x in s["model_accuracy_ci95"]))
        print(f"{'Bayes observer':<22}" + "".join(f"{x:>7.3f}" for x in s["observer_accuracy"]))
        print(f"model perseverative rate (lags 1-4, after the switch's feedback): {s['model_perseverative_rate']:.3f}")
        print(f"target (cpu): ≥ 0.8 at 5 trials after a switch: {s['model_accuracy'][5]:.3f}")
        gap = max(o - m for m, o in zip(s["model_accuracy"][3:], s["observer_accuracy"][3:], strict=True))
        print(f"target (gpu): within 0.05 of the observer from 3 trials on: largest gap {gap:.3f}")
        out.update(setting_b=s, setting_b_seconds=round(b_seconds, 1), wcst_variants=wcst_variants(args.profile))
    print(json.dumps(json_safe(out)))


if __name__ == "__main__":
    main()
