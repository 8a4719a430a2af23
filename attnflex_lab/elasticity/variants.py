"""Setting B closer to the WCST: a chooser's own choices, right/wrong feedback, criterion switches.

In ``tasks.wcst_stream`` the correct answer is shown after every trial and the rule switches with a
hazard h. The Wisconsin Card Sorting Test does neither: the person *chooses* a key card and hears
only "right" or "wrong", and the rule changes after a run of N correct sorts. Here both axes vary:

    feedback  "answer"       the correct answer a_t is shown (as in ``wcst_stream``)
              "right_wrong"  only y_t = 1[c_t = a_t] for the chooser's choice c_t
    switch    "hazard"       before each trial the rule switches with probability h
              "criterion"    it switches right after the chooser's N-th correct choice in a row

A stream is drawn with a chooser in the loop (the switches depend on its choices). The Bayes observer
of each variant filters over the rule with the likelihood of what was shown,

    answer:       like(r) = 1[card_t[r] = a_t]
    right_wrong:  like(r) = 1[ 1[card_t[r] = c_t] = y_t ]

and the switch step: with the hazard, π' = (1 − h)·post + (h/2)(1 − post); with the criterion the
streak of correct choices is *seen* (the feedback says right or wrong), so the switch comes at a known
trial and only its direction (either other rule, 1/2 each) is uncertain. ``brute_force_variant``
enumerates every rule sequence, with the streak computed along each sequence, as the reference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .bayes import ObserverResult, condition, observer_result, switch_prior
from .metrics import errors_by_lag
from .tasks import N_FEATURES, N_VALUES

FEEDBACK_KINDS = ("answer", "right_wrong")
SWITCH_KINDS = ("hazard", "criterion")


@dataclass(frozen=True)
class VariantConfig:
    feedback: str = "right_wrong"   # what is shown after each trial: FEEDBACK_KINDS
    switch: str = "criterion"       # when the rule changes: SWITCH_KINDS
    hazard: float = 0.05            # h, per trial ("hazard" only)
    criterion: int = 6              # N correct choices in a row that end a rule ("criterion" only)

    def __post_init__(self):
        if self.feedback not in FEEDBACK_KINDS:
            raise ValueError(f"feedback must be one of {FEEDBACK_KINDS}, got {self.feedback!r}")
        if self.switch not in SWITCH_KINDS:
            raise ValueError(f"switch must be one of {SWITCH_KINDS}, got {self.switch!r}")
        if not 0.0 <= self.hazard <= 1.0:
            raise ValueError(f"hazard is a probability per trial, got {self.hazard!r}")
        if not isinstance(self.criterion, int) or self.criterion < 1:
            raise ValueError(f"criterion must be a positive int, got {self.criterion!r}")


@dataclass
class ChoiceStream:
    """B streams of T trials with a chooser's choices; ``answers`` is hidden when feedback is right/wrong."""

    cards: torch.Tensor         # (B, T, 3) long
    rules: torch.Tensor         # (B, T) long: the hidden rule
    answers: torch.Tensor       # (B, T) long: cards[b, t, rules[b, t]]
    choices: torch.Tensor       # (B, T) long: the chooser's key card (value) at each trial
    right: torch.Tensor         # (B, T) bool: choices == answers, the right/wrong feedback
    since_switch: torch.Tensor  # (B, T) long: trials since the last switch (10**6 before any)
    config: VariantConfig


def evidence(cfg: VariantConfig, card: torch.Tensor, choice: torch.Tensor, right: torch.Tensor,
             answer: torch.Tensor) -> torch.Tensor:
    """like(r) for one trial: card (B, 3), choice/right/answer (B,) -> (B, 3) in {0, 1}."""
    if cfg.feedback == "answer":
        return (card == answer[:, None]).double()                          # (B, 3)
    return ((card == choice[:, None]) == right[:, None]).double()          # (B, 3)


class RuleFilter:
    """The variant's Bayes observer, one trial at a time (a stream's observer and a chooser share it)."""

    def __init__(self, cfg: VariantConfig, batch: int):
        self.cfg = cfg
        self.pi = torch.full((batch, N_FEATURES), 1.0 / N_FEATURES, dtype=torch.float64)  # (B, 3)
        self.streak = torch.zeros(batch, dtype=torch.long)                                # (B,)

    def predictive(self, card: torch.Tensor) -> torch.Tensor:
        """P(a_t = v) = Σ_r π(r)·1[card[r] = v]: card (B, 3) -> (B, 4)."""
        match = torch.nn.functional.one_hot(card.long(), N_VALUES).double()             # (B, 3, 4)
        return torch.einsum("br,brv->bv", self.pi, match)

    def update(self, card, choice, right, answer) -> None:
        post = condition(self.pi, evidence(self.cfg, card, choice, right, answer))      # (B, 3)
        if self.cfg.switch == "hazard":
            self.pi = switch_prior(post, self.cfg.hazard)
            return
        self.streak = torch.where(right, self.streak + 1, 0)
        due = self.streak >= self.cfg.criterion                                          # (B,) switch now
        self.pi = switch_prior(post, due.double()[:, None])                              # h = 1 where due
        self.streak = torch.where(due, 0, self.streak)


def variant_observer(stream: ChoiceStream) -> ObserverResult:
    """The exact Bayes observer of ``stream``'s variant, given the choices and the feedback shown."""
    B, T, _ = stream.cards.shape
    filt = RuleFilter(stream.config, B)
    priors, preds = [], []
    for t in range(T):
        priors.append(filt.pi)
        preds.append(filt.predictive(stream.cards[:, t]))
        filt.update(stream.cards[:, t], stream.choices[:, t], stream.right[:, t], stream.answers[:, t])
    return observer_result(priors, preds, stream.answers)


class ObserverChooser:
    """Chooses the observer's most probable answer (ties at random); with probability ε, any value."""

    def __init__(self, cfg: VariantConfig, batch: int, epsilon: float = 0.1):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.filter, self.epsilon = RuleFilter(cfg, batch), epsilon

    def probs(self, card: torch.Tensor) -> torch.Tensor:
        p = self.filter.predictive(card)                                                 # (B, 4)
        best = (p >= p.amax(-1, keepdim=True) - 1e-12).double()
        return (1 - self.epsilon) * best / best.sum(-1, keepdim=True) + self.epsilon / N_VALUES

    def update(self, card, choice, right, answer) -> None:
        self.filter.update(card, choice, right, answer)


def choice_stream(n: int, length: int, cfg: VariantConfig, *, chooser=None, gen: torch.Generator | None = None
                  ) -> ChoiceStream:
    """Draw ``n`` streams with ``chooser`` in the loop: anything with ``probs(card (B, 3)) -> (B, 4)`` and
    ``update(card, choice, right, answer)`` that sees only what the variant shows (default: an
    ε-greedy Bayes observer). Its choices are sampled from ``probs``."""
    if not isinstance(length, int) or length < 1 or not isinstance(n, int) or n < 1:
        raise ValueError(f"n and length must be positive ints, got n={n!r}, length={length!r}")
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    chooser = chooser if chooser is not None else ObserverChooser(cfg, n)
    cards = torch.randint(0, N_VALUES, (n, length, N_FEATURES), generator=gen)         # (B, T, 3)
    rules = torch.empty(n, length, dtype=torch.long)
    choices = torch.empty(n, length, dtype=torch.long)
    since = torch.empty(n, length, dtype=torch.long)
    rule, since_t = torch.randint(0, N_FEATURES, (n,), generator=gen), torch.full((n,), 10**6)
    streak = torch.zeros(n, dtype=torch.long)
    for t in range(length):
        rules[:, t], since[:, t] = rule, since_t
        card = cards[:, t]                                                               # (B, 3)
        answer = card.gather(1, rule[:, None]).squeeze(1)                                # (B,)
        choices[:, t] = torch.multinomial(chooser.probs(card).float(), 1, generator=gen).squeeze(1)
        right = choices[:, t] == answer
        chooser.update(card, choices[:, t], right, answer)
        if cfg.switch == "hazard":
            due = torch.rand(n, generator=gen) < cfg.hazard
        else:
            streak = torch.where(right, streak + 1, 0)
            due = streak >= cfg.criterion
            streak = torch.where(due, 0, streak)
        step = torch.randint(1, N_FEATURES, (n,), generator=gen)                         # +1 or +2
        rule = torch.where(due, (rule + step) % N_FEATURES, rule)
        since_t = torch.where(due, 0, since_t + 1)
    answers = cards.gather(2, rules.unsqueeze(-1)).squeeze(-1)                           # (B, T)
    return ChoiceStream(cards, rules, answers, choices, choices == answers, since, cfg)


def brute_force_variant(stream: ChoiceStream, b: int = 0) -> torch.Tensor:
    """P(a_t = v | what was shown before t) for stream ``b`` by enumerating all 3^T rule sequences (T ≤ 8).

    Each sequence's prior follows the generative process: the hazard, or a certain switch (to either
    other rule, 1/2 each) after the N-th correct choice in a row *under that sequence's rules*."""
    cfg, T = stream.config, stream.cards.shape[1]
    if T > 8:
        raise ValueError(f"brute force enumerates 3^T sequences; keep T <= 8, got T={T}")
    cards, choices = stream.cards[b].tolist(), stream.choices[b].tolist()
    shown_answer, shown_right = stream.answers[b].tolist(), stream.right[b].tolist()
    out = torch.zeros(T, N_VALUES, dtype=torch.float64)
    for t in range(T):
        joint = torch.zeros(N_VALUES, dtype=torch.float64)
        for seq in itertools.product(range(N_FEATURES), repeat=t + 1):
            p, streak = 1.0 / N_FEATURES, 0
            for s in range(t):
                hit = cards[s][seq[s]] == choices[s]              # the choice was right under this sequence
                if cfg.feedback == "answer":
                    p *= float(cards[s][seq[s]] == shown_answer[s])
                else:
                    p *= float(hit == shown_right[s])
                if cfg.switch == "hazard":
                    p *= (1 - cfg.hazard) if seq[s + 1] == seq[s] else cfg.hazard / 2
                else:
                    streak = streak + 1 if hit else 0
                    due = streak >= cfg.criterion
                    p *= (0.5 if seq[s + 1] != seq[s] else 0.0) if due else float(seq[s + 1] == seq[s])
                    streak = 0 if due else streak
            joint[cards[t][seq[t]]] += p
        out[t] = joint / joint.sum()
    return out


def variant_name(cfg: VariantConfig) -> str:
    return f"{cfg.feedback.replace('_', '/')} feedback, {cfg.switch} switches"


def observer_errors_by_lag(cfgs, *, n: int = 2000, length: int = 40, max_lag: int = 6, seed: int = 0) -> dict:
    """{variant name: the Bayes observer's error rate at lags 0..max_lag} on streams an ε-greedy observer
    chose in (ε = 0.1), one set of draws per variant."""
    out = {}
    for cfg in cfgs:
        s = choice_stream(n, length, cfg, gen=torch.Generator().manual_seed(seed))
        out[variant_name(cfg)] = errors_by_lag(variant_observer(s).correct, s.since_switch, max_lag)
    return out
