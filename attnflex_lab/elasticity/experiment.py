"""Setting A: train one model through a rule schedule (A → B → C → A), each rule to criterion.

One optimizer (Adam) is kept across phases, as a learner keeps its habits across a switch; the rule
changes without warning (uncued) or with the rule given as input (cued). That continual stream is a
plain loop here rather than ``fit`` because the data change under the optimizer at switches decided
by the learner's own running accuracy, and because we read the choices before every update.

Every step draws a fresh batch, records the learner's accuracy on it *before* the update (as a person
is scored on each card before the feedback teaches them), then takes one gradient step.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from ..profiles import run_steps
from . import metrics as M
from .models import build_model
from .tasks import switch_batch


@dataclass
class SwitchConfig:
    family: str = "pointer"               # one of models.FAMILIES
    schedule: tuple[int, ...] = (0, 1, 2, 0)  # rules in order: colour, shape, number, colour
    k: int = 4                            # K candidates per example
    batch_size: int = 32                  # examples per step
    lr: float = 3e-3                      # Adam learning rate, one optimizer for the whole schedule
    criterion: float = 0.95               # running accuracy that ends a phase
    criterion_window: int = 20            # steps in that running accuracy
    min_phase_steps: int = 30             # a phase lasts at least this long (room for the windows)
    max_phase_steps: int = 1500           # ... and at most this long (criterion not reached)
    hold_steps: int = 100                 # steps of practice after criterion before the rule switches
    entropy_coef: float = 0.0             # pointer_entropy: loss + λ·H(attention)
    replay: float = 0.0                   # cued only: share of each batch drawn from earlier rules (with their cue)
    reset_lr_matched: bool = False        # pointer_reset only: after the reset, scale every step to the size
    #                                       Adam without the reset would have taken (the LR-matched control)
    metric_window: int = 10               # w for switch cost and the perseveration window (steps)
    recovery_window: int = 5              # trailing window for recovery_steps
    probe_size: int = 256                 # fixed held-out examples per phase for attention and retention
    seed: int = 0

    def __post_init__(self):
        if len(self.schedule) < 2:
            raise ValueError(f"a schedule needs at least two phases to have a switch, got {self.schedule}")
        if any(a == b for a, b in zip(self.schedule, self.schedule[1:], strict=False)):
            raise ValueError(f"consecutive phases must change the rule, got {self.schedule}")
        if not 0.0 <= self.replay < 1.0:
            raise ValueError(f"replay is a share of each batch in [0, 1), got {self.replay}")
        if self.replay and not self.family.startswith("pointer_cued"):
            raise ValueError("replay needs a cued model: uncued, an old rule's examples carry wrong answers "
                             "for the new rule")
        if self.reset_lr_matched and self.family != "pointer_reset":
            raise ValueError(f"reset_lr_matched is an option of pointer_reset, not of {self.family}")
        if self.min_phase_steps < max(self.criterion_window, self.metric_window, self.recovery_window):
            raise ValueError("min_phase_steps must cover the criterion, metric and recovery windows")


@dataclass
class RunResult:
    """One model, one seed, one schedule."""

    family: str
    seed: int
    acc: np.ndarray                 # (steps,) batch accuracy before each update
    on_target: np.ndarray           # (steps,) mean probability on the target, same batches
    phase: np.ndarray               # (steps,) phase index of each step
    switch_steps: list[int]         # first step of phases 1..
    phase_steps: list[int]          # steps each phase took
    reached: list[bool]             # did the phase reach criterion (rather than max_phase_steps)?
    probe_acc: list[float]          # accuracy on the phase's probe at the end of the phase
    probe_on_target: list[float]    # attention (output) mass on the target at the end of the phase
    switches: list[dict] = field(default_factory=list)  # metrics per switch
    savings: float = float("nan")   # first phase vs the return to the same rule
    resets: int = 0                 # optimizer-state resets done (pointer_reset)


def _probe(rule: int, lure_rule: int | None, cfg: SwitchConfig, salt: int):
    return switch_batch(cfg.probe_size, rule, lure_rule, k=cfg.k,
                        gen=torch.Generator().manual_seed(1_000_003 * (cfg.seed + 1) + salt))


@torch.no_grad()
def _predict(model, batch):
    rule = torch.full((len(batch),), batch.rule, dtype=torch.long)
    logits, weights = model(batch.query, batch.candidates, rule)
    return logits.argmax(-1), weights


def _replay_loss(model, cfg: SwitchConfig, seen: set, gen: torch.Generator) -> torch.Tensor | float:
    """Cross-entropy on a few examples of earlier rules, each with its own cue (0 if none are due)."""
    n = int(round(cfg.replay * cfg.batch_size))
    if not n or not seen:
        return 0.0
    rules = sorted(seen)
    old = [switch_batch(n, r, None, k=cfg.k, gen=gen) for r in rules]        # one small batch per old rule
    query = torch.cat([b.query for b in old])                                # (R n, 3)
    cands = torch.cat([b.candidates for b in old])                           # (R n, K, 3)
    target = torch.cat([b.target for b in old])                              # (R n,)
    cue = torch.cat([torch.full((n,), r, dtype=torch.long) for r in rules])  # (R n,)
    logits, _ = model(query, cands, cue)
    return (n / cfg.batch_size) * F.cross_entropy(logits, target)           # weighted by its share of a batch


class UpdateNorm:
    """Callback: ‖θ_t − θ_{t−1}‖ over all parameters after every step (``norms[t]``: step t's update).

    What Adam's moment estimates do to the step size shows here: right after a switch, moments sized to
    the small gradients of a mastered rule make the steps larger; clearing them (``pointer_reset``) does not.
    """

    def __init__(self):
        self.norms: list[float] = []
        self._last: torch.Tensor | None = None

    def _flat(self, model) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()

    def on_fit_start(self, state):
        self._last = self._flat(state.model)

    def on_step_end(self, state):
        now = self._flat(state.model)
        self.norms.append(float((now - self._last).norm()))
        self._last = now


class ShadowAdam:
    """Adam's moments as they would have been without a reset, to size the reset learner's steps.

    At the reset it copies the optimizer's state; each later step it updates those moments with the same
    gradients (m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²) and returns the norm of the step they would give,
    ‖η m̂ / (√v̂ + ε)‖ over all parameters. Rescaling the reset learner's actual step to that norm leaves
    the reset only one effect: the step's *direction* (and per-weight sizes), not its overall length.
    """

    def __init__(self, opt: torch.optim.Adam):
        group = opt.param_groups[0]
        self.lr, (self.b1, self.b2), self.eps = group["lr"], group["betas"], group["eps"]
        self.state = {p: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()}
                      for p in group["params"] if p in opt.state}

    @torch.no_grad()
    def step_norm(self) -> float:
        total = 0.0
        for p, st in self.state.items():
            if p.grad is None:
                continue
            st["step"] = st["step"] + 1
            st["exp_avg"].mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
            st["exp_avg_sq"].mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
            t = float(st["step"])
            m_hat, v_hat = st["exp_avg"] / (1 - self.b1 ** t), st["exp_avg_sq"] / (1 - self.b2 ** t)
            total += float((self.lr * m_hat / (v_hat.sqrt() + self.eps)).pow(2).sum())
        return total ** 0.5


@torch.no_grad()
def _rescale_step(params: list, before: list, norm: float) -> None:
    """Move each parameter back along its step so that the whole step has length ``norm``."""
    steps = [p - b for p, b in zip(params, before, strict=True)]
    length = float(torch.sqrt(sum((d * d).sum() for d in steps)))
    if length > 0:
        for p, b, d in zip(params, before, steps, strict=True):
            p.copy_(b + d * (norm / length))


@contextmanager
def single_thread():
    """Run torch on one CPU thread inside the block, then restore the caller's setting.

    These models are tiny (a few thousand weights, batches of 32): threads only add synchronisation,
    and on a shared 2-core machine one thread measured 4-8x faster than the default.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_schedule(cfg: SwitchConfig, *, progress=None, callbacks=(), live=None) -> RunResult:
    """Train ``cfg.family`` through ``cfg.schedule``; returns the curves and the per-switch metrics.

    ``callbacks`` get ``on_fit_start(state)``, ``on_step_end(state)`` and ``on_fit_end(state)`` as in
    ``fit``, with a state carrying ``step`` (updates done) and ``model`` — what
    ``training.RecordAttention`` reads, so it records attention snapshots here too. ``live``, a
    ``training.LiveCurve``, gets the loss and the batch accuracy (a new curve in it per run; the caller
    closes it, so a loop over seeds keeps one figure).
    """
    with single_thread():
        return _run_schedule(cfg, progress, callbacks, live)


def _hook(callbacks, name: str, state) -> None:
    for cb in callbacks:
        method = getattr(cb, name, None)
        if method is not None:
            method(state)


def _run_schedule(cfg: SwitchConfig, progress, callbacks, live) -> RunResult:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg.family, k=cfg.k)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    acc, on_target, phase_of = [], [], []
    switch_steps, phase_steps, reached, probe_acc, probe_on = [], [], [], [], []
    switches, resets = [], 0
    prev_rule = None
    state = SimpleNamespace(step=0, model=model, stop=False)
    _hook(callbacks, "on_fit_start", state)
    if live is not None:
        live.start(title=f"{cfg.family} · seed {cfg.seed}")
    for p, rule in enumerate(cfg.schedule):
        probe = _probe(rule, prev_rule, cfg, salt=p)
        if p > 0:
            switch_steps.append(len(acc))
            _, w_before = _predict(model, probe)            # the old habit on the new rule's probe
            old_probe = _probe(prev_rule, rule, cfg, salt=100 + p)  # old rule, lure = new rule
        start, post_choices, reset_done, hit_at, shadow = len(acc), [], False, None, None
        # a dry run (profiles.run_steps) still gives a phase the min_phase_steps its windows need
        for i in range(max(run_steps(cfg.max_phase_steps), min(cfg.min_phase_steps, cfg.max_phase_steps))):
            batch = switch_batch(cfg.batch_size, rule, prev_rule, k=cfg.k, gen=gen)
            rule_t = torch.full((len(batch),), rule, dtype=torch.long)
            logits, weights = model(batch.query, batch.candidates, rule_t)      # (B, K), (B, K)
            choice = logits.argmax(-1)                                           # (B,)
            replay_loss = _replay_loss(model, cfg, seen=set(cfg.schedule[:p]) - {rule}, gen=gen)
            acc.append(float((choice == batch.target).float().mean()))
            on_target.append(float(weights.detach().gather(1, batch.target[:, None]).mean()))
            phase_of.append(p)
            if p > 0 and i < 3 * cfg.metric_window:   # room for the window after the first negative feedback
                post_choices.append((choice, batch.lure, batch.target))
            if cfg.family == "pointer_reset" and p > 0 and not reset_done and i >= 2 \
                    and np.mean(acc[-3:]) < cfg.criterion - 0.3:
                shadow = ShadowAdam(opt) if cfg.reset_lr_matched else None
                opt.state.clear()                # forget Adam's moments: the old gradients' scale and drift
                reset_done, resets = True, resets + 1
            loss = F.cross_entropy(logits, batch.target) + replay_loss
            if cfg.entropy_coef:
                loss = loss + cfg.entropy_coef * -(weights * weights.clamp_min(1e-12).log()).sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if shadow is not None:               # the LR-matched reset: Adam's step, at no-reset Adam's length
                norm, before = shadow.step_norm(), [q.detach().clone() for q in model.parameters()]
                opt.step()
                _rescale_step(list(model.parameters()), before, norm)
            else:
                opt.step()
            state.step += 1
            _hook(callbacks, "on_step_end", state)
            if progress is not None:
                progress()
            if live is not None:
                live.update(state.step, loss=loss.item(), accuracy=acc[-1])
            if hit_at is None and i + 1 >= cfg.min_phase_steps \
                    and np.mean(acc[-cfg.criterion_window:]) >= cfg.criterion:
                hit_at = i + 1
            if hit_at is not None and i + 1 >= hit_at + cfg.hold_steps:
                break
        phase_steps.append(hit_at if hit_at is not None else len(acc) - start)  # steps to criterion
        reached.append(hit_at is not None)
        choice_p, w_after = _predict(model, probe)
        probe_acc.append(float((choice_p == probe.target).float().mean()))
        probe_on.append(M.attention_on_target(w_after.numpy(), probe.target.numpy()))
        if p > 0:
            choices = torch.stack([c for c, _, _ in post_choices]).numpy()       # (steps, B)
            old_t = torch.stack([o for _, o, _ in post_choices]).numpy()         # (steps, B)
            new_t = torch.stack([n for _, _, n in post_choices]).numpy()         # (steps, B)
            persev_count, persev_rate = M.perseverative_errors(choices, old_t, new_t, cfg.metric_window)
            old_choice, _ = _predict(model, old_probe)
            s = switch_steps[-1]
            switches.append({
                "from_rule": prev_rule, "to_rule": rule,
                "switch_cost": M.switch_cost(acc, s, cfg.metric_window),
                "recovery_steps": M.recovery_steps(acc, s, 0.95, cfg.recovery_window),
                "perseverative_rate": persev_rate,      # after the first negative feedback (steps t₀+1 … t₀+w)
                "perseverative_errors": persev_count,
                "retention": M.retention((old_choice == old_probe.target).numpy()),
                "attention_shift": M.attention_shift(w_before.numpy(), w_after.numpy()),
            })
        prev_rule = rule
    _hook(callbacks, "on_fit_end", state)
    first_same = [i for i, r in enumerate(cfg.schedule) if r == cfg.schedule[0]]
    sav = (M.savings(phase_steps[0], phase_steps[first_same[1]]) if len(first_same) > 1 else float("nan"))
    return RunResult(cfg.family, cfg.seed, np.array(acc), np.array(on_target), np.array(phase_of),
                     switch_steps, phase_steps, reached, probe_acc, probe_on, switches, sav, resets)
