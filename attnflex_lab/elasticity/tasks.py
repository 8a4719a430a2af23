"""Card tasks after the Wisconsin Card Sorting Test, seeded, with known ground truth.

A card has three features (colour, shape, number), each one of ``N_VALUES`` = 4 values, stored as
ints ``(..., 3)``. A **rule** is a feature index: 0 colour, 1 shape, 2 number.

Setting A (weight-level switching): ``switch_batch`` builds a query card and K candidate cards. Under
the current rule exactly one candidate (the target) matches the query on that feature; one distractor
(the *lure*) matches on the lure rule (the previous rule, so perseveration is visible) and on nothing
that the current rule reads; the other distractors match on neither rule.

Setting B (in-context WCST): ``wcst_stream`` draws a stream of cards and a hidden rule that switches
with hazard h to one of the other two rules; the correct answer for a card is the value of its
rule's feature (the index of the key card it matches, as in Berg's four key cards).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

RULES = ("colour", "shape", "number")
N_FEATURES = 3
N_VALUES = 4


def _check_rule(name: str, rule: int | None, allow_none: bool = False) -> None:
    if rule is None and allow_none:
        return
    if not isinstance(rule, int) or not 0 <= rule < N_FEATURES:
        raise ValueError(f"{name} must be a rule index in 0..{N_FEATURES - 1} ({', '.join(RULES)}), got {rule!r}")


def _other_value(value: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A uniformly drawn value different from ``value`` (elementwise)."""
    shift = torch.randint(1, N_VALUES, value.shape, generator=gen)
    return (value + shift) % N_VALUES


@dataclass
class SwitchBatch:
    """One batch of setting-A examples. B examples, K candidates, 3 features."""

    query: torch.Tensor       # (B, 3) long: the query card
    candidates: torch.Tensor  # (B, K, 3) long: the candidate cards, in random order
    target: torch.Tensor      # (B,) long: index of the candidate matching on ``rule``
    lure: torch.Tensor        # (B,) long: index of the candidate matching on ``lure_rule``
    rule: int                 # the current rule
    lure_rule: torch.Tensor   # (B,) long: the rule the lure matches on (the previous rule, or random)

    def __len__(self) -> int:
        return self.query.shape[0]


def switch_batch(n: int, rule: int, lure_rule: int | None = None, *, k: int = 4,
                 gen: torch.Generator | None = None) -> SwitchBatch:
    """``n`` setting-A examples under ``rule``, with a lure matching on ``lure_rule``.

    ``lure_rule=None`` draws the lure's rule at random among the other two per example (the first
    phase, which has no previous rule).
    """
    _check_rule("rule", rule)
    _check_rule("lure_rule", lure_rule, allow_none=True)
    if lure_rule == rule:
        raise ValueError(f"lure_rule must differ from rule (both are {RULES[rule]})")
    if not isinstance(k, int) or k < 3:
        raise ValueError(f"k (candidates per example) must be an int >= 3 (target, lure, one more), got {k!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    if lure_rule is None:
        step = torch.randint(1, N_FEATURES, (n,), generator=gen)
        lure_rules = (rule + step) % N_FEATURES                          # (B,)
    else:
        lure_rules = torch.full((n,), lure_rule, dtype=torch.long)       # (B,)
    rows = torch.arange(n)
    query = torch.randint(0, N_VALUES, (n, N_FEATURES), generator=gen)   # (B, 3)
    cands = torch.randint(0, N_VALUES, (n, k, N_FEATURES), generator=gen)  # (B, K, 3)
    q_rule = query[:, rule]                                              # (B,)
    q_lure = query[rows, lure_rules]                                     # (B,)
    # slot 0 = target, slot 1 = lure, slots 2.. = plain distractors (shuffled below)
    for j in range(k):
        on_rule = q_rule if j == 0 else _other_value(q_rule, gen)
        on_lure = q_lure if j == 1 else _other_value(q_lure, gen)
        cands[:, j, rule] = on_rule
        cands[rows, j, lure_rules] = on_lure
    perm = torch.argsort(torch.rand(n, k, generator=gen), dim=1)          # (B, K): new slot -> old slot
    cands = torch.gather(cands, 1, perm.unsqueeze(-1).expand(-1, -1, N_FEATURES))  # (B, K, 3)
    target = (perm == 0).long().argmax(dim=1)                             # (B,)
    lure = (perm == 1).long().argmax(dim=1)                               # (B,)
    return SwitchBatch(query, cands, target, lure, rule, lure_rules)


@dataclass
class WCSTStream:
    """A batch of in-context WCST streams. B streams of T trials."""

    cards: torch.Tensor    # (B, T, 3) long
    rules: torch.Tensor    # (B, T) long: the hidden rule at each trial
    answers: torch.Tensor  # (B, T) long: cards[b, t, rules[b, t]], the feedback shown after trial t
    since_switch: torch.Tensor  # (B, T) long: trials since the last switch (large before any switch)


def wcst_stream(n: int, length: int, hazard: float, *, gen: torch.Generator | None = None,
                first_rule: torch.Tensor | None = None) -> WCSTStream:
    """``n`` streams of ``length`` trials; before each trial after the first the rule switches with
    probability ``hazard`` to one of the other two rules, uniformly."""
    if not 0.0 <= hazard <= 1.0:
        raise ValueError(f"hazard is a probability per trial, got {hazard!r}")
    if not isinstance(length, int) or length < 1 or not isinstance(n, int) or n < 1:
        raise ValueError(f"n and length must be positive ints, got n={n!r}, length={length!r}")
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    cards = torch.randint(0, N_VALUES, (n, length, N_FEATURES), generator=gen)   # (B, T, 3)
    switch = torch.rand(n, length, generator=gen) < hazard                       # (B, T)
    switch[:, 0] = False
    step = torch.randint(1, N_FEATURES, (n, length), generator=gen)              # (B, T): +1 or +2
    rules = torch.empty(n, length, dtype=torch.long)
    since = torch.empty(n, length, dtype=torch.long)
    rules[:, 0] = (torch.randint(0, N_FEATURES, (n,), generator=gen) if first_rule is None
                   else first_rule.long())
    since[:, 0] = 10**6  # "no switch seen yet"
    for t in range(1, length):
        sw = switch[:, t]
        rules[:, t] = torch.where(sw, (rules[:, t - 1] + step[:, t]) % N_FEATURES, rules[:, t - 1])
        since[:, t] = torch.where(sw, torch.zeros_like(since[:, t - 1]), since[:, t - 1] + 1)
    answers = torch.gather(cards, 2, rules.unsqueeze(-1)).squeeze(-1)            # (B, T)
    return WCSTStream(cards, rules, answers, since)


@dataclass
class DiagnosticBatch:
    """Probe cards for reading which rule a chooser follows. B examples, K ≥ 4 candidates."""

    query: torch.Tensor       # (B, 3) long
    candidates: torch.Tensor  # (B, K, 3) long
    slot_rule: torch.Tensor   # (B, K) long: the one rule each candidate matches on, −1 for none

    def __len__(self) -> int:
        return self.query.shape[0]

    def weights_by_rule(self, weights: torch.Tensor) -> torch.Tensor:
        """weights (…, B, K) over candidates -> (…, B, 4): mass on the colour, shape, number, no-match cards."""
        if weights.shape[-2:] != self.slot_rule.shape:
            raise ValueError(f"weights end in {tuple(weights.shape[-2:])}, the probe is {tuple(self.slot_rule.shape)}")
        onehot = torch.nn.functional.one_hot(self.slot_rule % (N_FEATURES + 1), N_FEATURES + 1)  # (B, K, 4)
        # −1 % 4 = 3: the no-match column comes last
        return torch.einsum("...bk,bkr->...br", weights.float(), onehot.float())

    def mass_by_rule(self, weights: torch.Tensor) -> torch.Tensor:
        """weights (…, B, K) -> (…, 4): mean mass on the colour, shape, number, no-match cards."""
        return self.weights_by_rule(weights).mean(-2)


def diagnostic_batch(n: int, *, k: int = 4, gen: torch.Generator | None = None) -> DiagnosticBatch:
    """Candidate j < 3 matches the query on feature j only; the rest match on nothing (shuffled).

    Whatever the current rule, exactly one candidate is right under it, so the attention on each
    candidate reads off how much the model follows each rule.
    """
    if not isinstance(k, int) or k < N_FEATURES + 1:
        raise ValueError(f"a diagnostic batch needs k >= {N_FEATURES + 1} candidates, got {k!r}")
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    query = torch.randint(0, N_VALUES, (n, N_FEATURES), generator=gen)                 # (B, 3)
    cands = torch.empty(n, k, N_FEATURES, dtype=torch.long)
    for j in range(k):
        for f in range(N_FEATURES):
            cands[:, j, f] = query[:, f] if f == j else _other_value(query[:, f], gen)
    slot_rule = torch.tensor([j if j < N_FEATURES else -1 for j in range(k)]).expand(n, k)  # (B, K)
    perm = torch.argsort(torch.rand(n, k, generator=gen), dim=1)                          # (B, K)
    cands = torch.gather(cands, 1, perm.unsqueeze(-1).expand(-1, -1, N_FEATURES))         # (B, K, 3)
    return DiagnosticBatch(query, cands, torch.gather(slot_rule, 1, perm))
