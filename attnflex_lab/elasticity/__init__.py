"""Attention elasticity (lesson 08): rule-switching card tasks, the Bayes observer, switching metrics.

    tasks       seeded card tasks: setting A (pick the matching candidate) and B (WCST streams)
    bayes       the exact Bayes-optimal observer for setting B, and a brute-force reference
    variants    setting B as the WCST has it: a chooser's choices, right/wrong feedback, criterion switches
    metrics     switch cost, recovery, perseveration, retention, savings, attention shift, excess errors (pure)
    shifts      ID/ED/reversal shifts: dimensional attention vs the same MLP with uniform attention vs a pointer
    shift_runs  the shift experiment over families and seeds (mean, 95 % CI), ED-cost sweeps, the widget grid
    models      setting A choosers: attention pointers, MLP and GRU baselines, the shared-scorer control
    experiment  one model through a rule schedule, to criterion, with per-switch metrics
    context     setting B: a causal transformer over trial tokens, scored vs the observer, its attention read
    bishara     the attentional-updating model (Bishara et al. 2010): r, p, d, f fitted by likelihood of choices
    serial      learning to switch: metrics by switch index over 12+ switches
    switching   run_switching(): either setting, sized by the profile, over seeds, mean ± 95 % CI
    plots       lesson 08's figures (ax=None -> a new figure; returns the Axes)
    cli         `python -m attnflex_lab flex`
"""

from . import bayes, metrics, tasks
from .bayes import bayes_observer
from .switching import SwitchingResult, run_switching
from .tasks import RULES, switch_batch, wcst_stream

__all__ = ["RULES", "SwitchingResult", "bayes", "bayes_observer", "metrics", "run_switching", "switch_batch",
           "tasks", "wcst_stream"]
