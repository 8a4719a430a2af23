"""Intra-/extra-dimensional shifts (CANTAB ID/ED) and reversals: where *dimensional* attention predicts
something that a model without it does not.

After the CANTAB set-shifting test (Roberts, Robbins & Everitt 1988; Downes et al. 1989) and
attention-learning theory (Mackintosh 1975; Kruschke's ALCOVE 1992). A card has ``n_dims`` dimensions
(say colour, shape, texture), each one of ``n_values`` values. A trial shows two cards; in every
dimension the stage uses two *exemplar* values, one on each card, assigned at random per dimension, so
only the relevant dimension predicts the reward. The rewarded card is the one carrying the rewarded
value on the relevant dimension.

- **acquisition** (stage 1): dimension 0 relevant, exemplars ``perm_d[0:2]``, value ``perm_0[0]``
  rewarded; trained to criterion, then ``overtrain`` more steps (set strength);
- **ID shift**: *new* exemplars ``perm_d[2:4]`` on every dimension, dimension 0 still relevant;
- **ED shift**: new exemplars, dimension 1 now relevant;
- **reversal**: the old exemplars, dimension 0, the *other* value rewarded.

Every shift starts from a copy of the same trained model and optimizer, so the three are paired.

Models score each card alone (a shared per-candidate scorer) and choose by softmax over the two cards:

- ``dimension``: s(card) = MLP(x), x_d = D α_d onehot(v_d), α = softmax(g / τ) over dimensions. α is
  the learned dimensional attention; how fast it re-allocates is this lesson's *elasticity*;
- ``mlp``: the same MLP of the same one-hot card with α held uniform: no dimensional attention;
- ``pointer``: the lab's scaled dot-product score s = q·(W card)/√d with a learned query q (there is no
  query card in this task, so q does not depend on the input).

Steps to criterion: updates after the stage starts until the mean, over the last ``window`` steps,
of a softmax chooser's *expected* accuracy (the probability it puts on the rewarded card, averaged
over the batch, scored before each update) first reaches ``criterion``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..profiles import run_steps

SHIFT_FAMILIES = ("dimension", "mlp", "pointer")
SHIFT_KINDS = ("ID", "ED", "reversal")


@dataclass
class ShiftConfig:
    family: str = "dimension"      # one of SHIFT_FAMILIES
    n_dims: int = 3                # D: dimensions per card
    n_values: int = 8              # V: values per dimension (4 used: 2 exemplars before, 2 new after)
    batch_size: int = 32           # trials per step
    lr: float = 3e-3               # Adam, one optimizer kept across the shift (1e-2 floors at the window)
    criterion: float = 0.9         # expected accuracy that ends a stage ...
    window: int = 20               # ... averaged over this many steps
    overtrain: int = 0             # steps on stage 1 after its criterion (set strength)
    max_steps: int = 600           # a stage that has not reached criterion by then counts as max_steps
    temperature: float = 1.0       # dimension only: α = softmax(g / τ)
    entropy_bonus: float = 0.0     # dimension only: loss − λ·H(α) (a bonus keeps α soft)
    reset_attention: bool = False  # dimension only: g ← 0 (α uniform) and its Adam state cleared at the shift
    hidden: int = 32               # mlp hidden width
    d: int = 16                    # pointer query/key width
    seed: int = 0

    def __post_init__(self):
        if self.family not in SHIFT_FAMILIES:
            raise ValueError(f"unknown shift family {self.family!r}; choose one of {', '.join(SHIFT_FAMILIES)}")
        if self.n_dims < 2 or self.n_values < 4:
            raise ValueError(f"need n_dims >= 2 (an ED shift) and n_values >= 4 (new exemplars), "
                             f"got {self.n_dims} and {self.n_values}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        attention_knobs = self.temperature != 1.0 or self.entropy_bonus or self.reset_attention
        if attention_knobs and self.family != "dimension":
            raise ValueError(f"temperature, entropy_bonus and reset_attention act on dimensional attention; "
                             f"family {self.family!r} has none")
        if self.max_steps < self.window or self.overtrain < 0:
            raise ValueError(f"need max_steps >= window and overtrain >= 0, got {self.max_steps}, "
                             f"{self.window}, {self.overtrain}")


@dataclass
class Stage:
    """Which exemplars a stage shows and which value of which dimension is rewarded."""

    pairs: torch.Tensor   # (D, 2) long: the two exemplar values of each dimension
    dim: int              # the relevant dimension
    value: int            # the rewarded value on it (one of pairs[dim])


def make_stages(cfg: ShiftConfig) -> dict[str, Stage]:
    """Acquisition and the three shifts for ``cfg.seed`` (exemplars drawn per seed)."""
    gen = torch.Generator().manual_seed(10_007 * cfg.seed + 1)
    perm = torch.stack([torch.randperm(cfg.n_values, generator=gen) for _ in range(cfg.n_dims)])  # (D, V)
    old, new = perm[:, 0:2], perm[:, 2:4]                                                          # (D, 2)
    return {"acquisition": Stage(old, 0, int(old[0, 0])),
            "ID": Stage(new, 0, int(new[0, 0])),
            "ED": Stage(new, 1, int(new[1, 0])),
            "reversal": Stage(old, 0, int(old[0, 1]))}


def shift_batch(stage: Stage, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` trials: cards (n, 2, D) long and the rewarded card's index (n,)."""
    d = stage.pairs.shape[0]
    flip = torch.randint(0, 2, (n, d), generator=gen)                       # (n, D): which card gets pairs[:, 0]
    first = stage.pairs[torch.arange(d), flip]                              # (n, D)
    second = stage.pairs[torch.arange(d), 1 - flip]                         # (n, D)
    cards = torch.stack([first, second], 1)                                 # (n, 2, D)
    target = (cards[:, 1, stage.dim] == stage.value).long()                 # (n,) 1 iff card 1 has the value
    return cards, target


class CardMLP(nn.Module):
    """s = MLP(one-hot card), with no dimensional attention unless a subclass gates its input."""

    def __init__(self, cfg: ShiftConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.n_dims * cfg.n_values, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, 1))
        self.n_values = cfg.n_values

    def features(self, cards: torch.Tensor) -> torch.Tensor:
        return F.one_hot(cards, self.n_values).float()                               # (n, 2, D, V)

    def forward(self, cards):
        return self.net(self.features(cards).flatten(-2)).squeeze(-1)               # (n, 2, D V) -> (n, 2)


class DimensionAttention(CardMLP):
    """The same MLP, its input gated per dimension: x_d = D α_d onehot(v_d), α = softmax(g / τ).

    With α uniform (g = 0) the gate is the identity, so ``mlp`` is this model with its attention
    removed and nothing else changed.
    """

    def __init__(self, cfg: ShiftConfig):
        super().__init__(cfg)
        self.temperature = cfg.temperature
        self.gate = nn.Parameter(torch.zeros(cfg.n_dims))                             # g (D,): α uniform at start

    def attention(self) -> torch.Tensor:
        return (self.gate / self.temperature).softmax(-1)                             # α (D,)

    def features(self, cards):
        alpha = self.attention()                                                      # (D,)
        return super().features(cards) * (len(alpha) * alpha)[:, None]                # (n, 2, D, V)


class CardPointer(nn.Module):
    """s = q · (W card) / √d with a learned query q: the lab's pointer score, nothing to condition q on."""

    def __init__(self, cfg: ShiftConfig):
        super().__init__()
        self.query = nn.Parameter(torch.randn(cfg.d))                                 # q (d,)
        self.key = nn.Linear(cfg.n_dims * cfg.n_values, cfg.d, bias=False)           # W (d, D V)
        self.n_values, self.d = cfg.n_values, cfg.d

    def forward(self, cards):
        k = self.key(F.one_hot(cards, self.n_values).float().flatten(-2))            # (n, 2, d)
        return k @ self.query / math.sqrt(self.d)                                     # (n, 2)


def build_scorer(cfg: ShiftConfig) -> nn.Module:
    return {"dimension": DimensionAttention, "mlp": CardMLP, "pointer": CardPointer}[cfg.family](cfg)


def steps_to_criterion(expected_acc, criterion: float, window: int) -> float:
    """Smallest n >= window with mean(p[n−window : n]) >= criterion, or inf if none (p: one stage)."""
    p = np.asarray(expected_acc, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"expected_acc must be a 1-D curve, got shape {p.shape}")
    if len(p) < window:
        return math.inf
    c = np.concatenate([[0.0], np.cumsum(p)])
    running = (c[window:] - c[:-window]) / window                                    # running[i]: steps i..i+w-1
    hit = np.nonzero(running >= criterion - 1e-12)[0]
    return float(hit[0] + window) if len(hit) else math.inf


@dataclass
class StageTrace:
    expected_acc: np.ndarray      # (steps,) probability on the rewarded card, batch mean, before each update
    attention: np.ndarray | None  # (steps, D) α before each update (dimension family), else None
    steps: float                  # steps to criterion (inf: not within max_steps)


def _entropy(alpha: torch.Tensor) -> torch.Tensor:
    return -(alpha * alpha.clamp_min(1e-12).log()).sum()


def train_stage(model, opt, stage: Stage, cfg: ShiftConfig, gen: torch.Generator,
                extra_steps: int = 0) -> StageTrace:
    """Train on ``stage`` until criterion, then ``extra_steps`` more; stop at ``max_steps`` if never reached."""
    acc, att, hit = [], [], math.inf
    for i in range(run_steps(cfg.max_steps + extra_steps)):
        cards, target = shift_batch(stage, cfg.batch_size, gen)                       # (n, 2, D), (n,)
        logits = model(cards)                                                         # (n, 2)
        acc.append(float(logits.detach().softmax(-1).gather(1, target[:, None]).mean()))
        loss = F.cross_entropy(logits, target)
        if isinstance(model, DimensionAttention):
            alpha = model.attention()                                                 # (D,)
            att.append(alpha.detach().numpy().copy())
            loss = loss - cfg.entropy_bonus * _entropy(alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if math.isinf(hit):
            hit = steps_to_criterion(acc[-cfg.window:], cfg.criterion, cfg.window) + i + 1 - cfg.window \
                if i + 1 >= cfg.window else math.inf
            if math.isinf(hit) and i + 1 >= cfg.max_steps:
                break
        if i + 1 >= hit + extra_steps:
            break
    return StageTrace(np.array(acc), np.array(att) if att else None, hit)


@dataclass
class ShiftRun:
    """One family, one seed: acquisition, then each shift from a copy of the same trained state."""

    family: str
    seed: int
    acquisition: StageTrace
    shifts: dict[str, StageTrace] = field(default_factory=dict)

    def steps(self, kind: str, cap: int) -> float:
        """Steps to criterion after the shift; a run that never got there counts as ``cap``."""
        s = self.shifts[kind].steps
        return float(cap) if math.isinf(s) else s


def run_shifts(cfg: ShiftConfig, kinds: tuple[str, ...] = SHIFT_KINDS, after_criterion: int = 0) -> ShiftRun:
    """Acquire stage 1 to criterion (+ overtraining), then run every shift in ``kinds`` from a copy
    (to criterion, + ``after_criterion`` steps so that curves can be drawn past it)."""
    unknown = [k for k in kinds if k not in SHIFT_KINDS]
    if unknown:
        raise ValueError(f"unknown shift kinds {unknown}; choose from {', '.join(SHIFT_KINDS)}")
    before = torch.get_num_threads()
    torch.set_num_threads(1)        # tiny models: threads only add synchronisation
    try:
        torch.manual_seed(cfg.seed)
        stages = make_stages(cfg)
        model = build_scorer(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(cfg.seed)
        acq = train_stage(model, opt, stages["acquisition"], cfg, gen, extra_steps=cfg.overtrain)
        run = ShiftRun(cfg.family, cfg.seed, acq)
        for kind in kinds:
            m = copy.deepcopy(model)
            o = torch.optim.Adam(m.parameters(), lr=cfg.lr)
            o.load_state_dict(opt.state_dict())          # the learner keeps its optimizer's habits too
            if cfg.reset_attention:
                with torch.no_grad():
                    m.gate.zero_()
                o.state.pop(m.gate, None)
            g = torch.Generator().manual_seed(1_000 * (cfg.seed + 1))   # one card stream for every shift: paired
            run.shifts[kind] = train_stage(m, o, stages[kind], cfg, g, extra_steps=after_criterion)
        return run
    finally:
        torch.set_num_threads(before)

