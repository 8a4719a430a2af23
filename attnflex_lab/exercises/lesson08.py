"""Lesson 08 exercises: the switch cost of an accuracy curve, and the attention shift (Jensen–Shannon
divergence in bits) between two attention distributions.

The model answers use plain torch so ``show_solution`` prints them for the learner; they compute the
same numbers as ``attnflex_lab.elasticity.metrics`` (the tests check that).
"""

import torch

from . import Exercise, register

# --- 08.switch_cost -----------------------------------------------------------------------------


def switch_cost(acc: torch.Tensor, switch_step: int, window: int) -> torch.Tensor:
    """mean(acc[s − w : s]) − mean(acc[s : s + w]) for a 1-D accuracy curve; returns a 0-dim tensor."""
    before = acc[switch_step - window:switch_step].mean()   # the last w steps under the old rule
    after = acc[switch_step:switch_step + window].mean()    # the first w steps under the new rule
    return before - after


def _curve_inputs(gen: torch.Generator):
    steps = int(torch.randint(30, 80, (1,), generator=gen))
    window = int(torch.randint(2, 8, (1,), generator=gen))
    switch = int(torch.randint(window, steps - window, (1,), generator=gen))
    acc = torch.rand(steps, generator=gen, dtype=torch.float64)   # (steps,)
    return acc, switch, window


register(Exercise(
    id="08.switch_cost",
    prompt="Write switch_cost(acc, switch_step, window): the mean accuracy over the `window` steps "
           "before the switch minus the mean over the first `window` steps after it (0-dim tensor).",
    solution=switch_cost,
    make_inputs=_curve_inputs,
    hint="the step at switch_step is already under the new rule: 'before' is acc[s-w:s] and 'after' "
         "is acc[s:s+w]; a sign flip means you subtracted the other way round.",
))

# --- 08.attention_shift -------------------------------------------------------------------------


def attention_shift(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean over rows of JS(p, q) = H((p+q)/2) − (H(p) + H(q))/2 in bits; p, q (B, K) rows sum to 1."""
    def entropy_bits(x):                                        # (B, K) -> (B,), with 0 log 0 = 0
        return -torch.where(x > 0, x * torch.log2(x), torch.zeros_like(x)).sum(-1)

    m = (p + q) / 2                                             # (B, K) the mixture
    return (entropy_bits(m) - (entropy_bits(p) + entropy_bits(q)) / 2).mean()


def _dist_inputs(gen: torch.Generator):
    rows, k = int(torch.randint(2, 9, (1,), generator=gen)), int(torch.randint(2, 7, (1,), generator=gen))
    p = torch.softmax(3 * torch.randn(rows, k, generator=gen, dtype=torch.float64), -1)  # (B, K)
    q = torch.softmax(3 * torch.randn(rows, k, generator=gen, dtype=torch.float64), -1)  # (B, K)
    p[0] = 0.0
    p[0, 0] = 1.0       # one one-hot row: 0 log 0 must count as 0, not NaN
    return p, q


register(Exercise(
    id="08.attention_shift",
    prompt="Write attention_shift(p, q): the Jensen–Shannon divergence in bits between each row of "
           "p and q (B, K), averaged over rows (0-dim tensor, between 0 and 1).",
    solution=attention_shift,
    make_inputs=_dist_inputs,
    hint="JS = H(m) − (H(p) + H(q))/2 with m = (p + q)/2 and H in bits (log2, not the natural log); "
         "treat 0·log 0 as 0 (torch.where, or xlogy), or a one-hot row gives NaN.",
))
