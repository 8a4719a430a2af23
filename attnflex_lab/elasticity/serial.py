"""Learning to switch: serial-switch schedules in setting A (Harlow 1949's learning sets, for networks).

One model goes through ``n_switches`` unannounced rule switches (colour → shape → number → colour …),
each rule to criterion and a little practice, and we read recovery, switch cost, perseveration and
retention against the switch index. Uncued vs cued (the rule as input) vs cued with replay of earlier
rules: does recovery get faster with practice at switching, and does a cued learner come to use its cue?
"""

from __future__ import annotations

import numpy as np

from .experiment import RunResult, run_schedule
from .metrics import mean_ci
from .switching import weights_config

SERIAL_FAMILIES = ("pointer", "pointer_cued", "pointer_cued_replay")
SERIAL_METRICS = ("recovery_steps", "switch_cost", "perseverative_rate", "retention")


def serial_schedule(n_switches: int) -> tuple[int, ...]:
    """Rules 0, 1, 2, 0, 1, 2, … : ``n_switches`` + 1 phases, every switch to the next rule."""
    if not isinstance(n_switches, int) or n_switches < 1:
        raise ValueError(f"n_switches must be a positive int, got {n_switches!r}")
    return tuple(i % 3 for i in range(n_switches + 1))


def run_serial(family: str, seeds, n_switches: int = 12, profile_name: str = "cpu",
               **overrides) -> tuple[dict, list[RunResult]]:
    """({metric: (seeds, n_switches) array}, runs) for one family over a serial schedule."""
    runs = [run_schedule(weights_config(family, seed, profile_name, schedule=serial_schedule(n_switches),
                                        **overrides)) for seed in seeds]
    curves = {m: np.array([[s[m] for s in r.switches] for r in runs], dtype=float) for m in SERIAL_METRICS}
    return curves, runs


def summarise_serial(curves: dict, first: int = 3) -> dict:
    """Mean ± 95 % CI over seeds of each metric on the first ``first`` and the last ``first`` switches."""
    out = {}
    for metric, values in curves.items():          # values: (seeds, switches)
        early, late = values[:, :first].mean(1), values[:, -first:].mean(1)
        out[metric] = {"first": mean_ci(early), "last": mean_ci(late)}
    return out
