"""Setting B: a causal transformer that must find the hidden rule from the feedback in its context.

Each position is one trial. Its token carries the current card and the previous trial's card and
answer (the feedback), so token t reads "card_{t-1} was sorted to a_{t-1}; now here is card_t" and the
model predicts a_t. A small per-token MLP can tell which features of card_{t-1} matched a_{t-1}
(the evidence about the rule); causal attention over the earlier tokens has to weigh that evidence
by recency to track a rule that switches without warning. Weights are fixed at test time.

Training is a plain loop on freshly drawn streams (an endless task: no epochs, no validation split),
which is why it does not go through ``fit``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..modules import TransformerBlock, run_with_cache
from ..profiles import run_steps
from .bayes import bayes_observer
from .experiment import single_thread
from .metrics import excess_errors_by_lag, perseverative_rate, set_loss_rate
from .tasks import N_FEATURES, N_VALUES, wcst_stream

TOKEN_WIDTH = 2 * N_FEATURES * N_VALUES + N_VALUES + 1  # card_t, card_{t-1}, a_{t-1}, "first trial" flag


@dataclass
class ContextConfig:
    length: int = 40          # T: trials per stream
    hazard: float = 0.05      # h: probability per trial that the rule switches
    d_model: int = 64         # C: residual width
    n_heads: int = 4          # H: heads per layer
    n_layers: int = 2         # L: transformer blocks
    steps: int = 2000         # optimizer steps (a fresh batch of streams each)
    batch_size: int = 64      # streams per step
    lr: float = 2e-3          # AdamW peak learning rate (cosine decay after a short warm-up)
    warmup: int = 100         # linear warm-up steps
    embed: str = "mlp"        # token embedding: "mlp" (per-token MLP) or "linear" (the ablation)
    arch: str = "transformer"  # "transformer" (causal attention over the trials) or "gru" (a recurrent state)
    seed: int = 0


def trial_tokens(cards: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """cards (B, T, 3), answers (B, T) -> float tokens (B, T, TOKEN_WIDTH); token t hides a_t."""
    B, T, _ = cards.shape
    card = F.one_hot(cards, N_VALUES).float().reshape(B, T, -1)           # (B, T, 3) -> (B, T, 12)
    prev_card = torch.cat([torch.zeros_like(card[:, :1]), card[:, :-1]], 1)  # (B, T, 12), shifted right
    ans = F.one_hot(answers, N_VALUES).float()                             # (B, T, 4)
    prev_ans = torch.cat([torch.zeros_like(ans[:, :1]), ans[:, :-1]], 1)   # (B, T, 4)
    first = torch.zeros(B, T, 1)
    first[:, 0] = 1.0                                                      # (B, T, 1)
    return torch.cat([card, prev_card, prev_ans, first], -1)               # (B, T, 29)


class ContextTransformer(nn.Module):
    """Trial tokens (B, T, 29) -> answer logits (B, T, 4), causal: trial t sees trials ≤ t."""

    def __init__(self, cfg: ContextConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.d_model
        if cfg.embed not in ("mlp", "linear"):
            raise ValueError(f"embed must be 'mlp' or 'linear', got {cfg.embed!r}")
        self.embed = (nn.Sequential(nn.Linear(TOKEN_WIDTH, 2 * C), nn.GELU(), nn.Linear(2 * C, C))
                      if cfg.embed == "mlp" else nn.Linear(TOKEN_WIDTH, C))
        self.pos = nn.Parameter(torch.zeros(cfg.length, C))
        self.blocks = nn.ModuleList(TransformerBlock(C, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, N_VALUES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3 or tokens.shape[-1] != TOKEN_WIDTH:
            raise ValueError(f"tokens must have shape (B, T, {TOKEN_WIDTH}), got {tuple(tokens.shape)}")
        T = tokens.shape[1]
        if T > self.cfg.length:
            raise ValueError(f"T={T} trials exceeds the model's length={self.cfg.length}")
        x = self.embed(tokens) + self.pos[:T]          # (B, T, 29) -> (B, T, C)
        for block in self.blocks:
            x = block(x, causal=True)                  # (B, T, C)
        return self.head(self.ln_f(x))                 # (B, T, C) -> (B, T, 4)


class ContextGRU(nn.Module):
    """The same trial tokens (B, T, 29) -> answer logits (B, T, 4) through a GRU: no attention, one state
    carried from trial to trial (the recurrent learner beside the transformer). ``n_layers`` GRU layers."""

    def __init__(self, cfg: ContextConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.d_model
        self.embed = nn.Sequential(nn.Linear(TOKEN_WIDTH, 2 * C), nn.GELU(), nn.Linear(2 * C, C))
        self.gru = nn.GRU(C, C, num_layers=cfg.n_layers, batch_first=True)
        self.head = nn.Linear(C, N_VALUES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3 or tokens.shape[-1] != TOKEN_WIDTH:
            raise ValueError(f"tokens must have shape (B, T, {TOKEN_WIDTH}), got {tuple(tokens.shape)}")
        h, _ = self.gru(self.embed(tokens))            # (B, T, 29) -> (B, T, C) -> (B, T, C)
        return self.head(h)                            # (B, T, C) -> (B, T, 4)


def build_context_model(cfg: ContextConfig) -> nn.Module:
    if cfg.arch not in ("transformer", "gru"):
        raise ValueError(f"arch must be 'transformer' or 'gru', got {cfg.arch!r}")
    return ContextTransformer(cfg) if cfg.arch == "transformer" else ContextGRU(cfg)


def _lr(step: int, cfg: ContextConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())


def train_context(cfg: ContextConfig, *, progress=None, device: str | torch.device = "cpu", live=None
                  ) -> tuple[ContextTransformer, list[float]]:
    """Train on fresh streams (drawn on the CPU, moved to ``device``); returns the model and the loss
    per step. ``progress(step)`` is called after each step if given; ``live``, a
    ``training.LiveCurve``, gets the loss (a new curve in it per run; the caller closes it)."""
    device = torch.device(device)
    if device.type != "cpu":
        return _train_context(cfg, progress, device, live)
    with single_thread():  # small model: on a shared 2-core machine one thread was faster
        return _train_context(cfg, progress, device, live)


def _train_context(cfg: ContextConfig, progress, device: torch.device, live
                   ) -> tuple[ContextTransformer, list[float]]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    model = build_context_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    losses = []
    if live is not None:
        live.start(title=f"seed {cfg.seed}", total_steps=cfg.steps)
    for step in range(run_steps(cfg.steps)):
        s = wcst_stream(cfg.batch_size, cfg.length, cfg.hazard, gen=gen)
        logits = model(trial_tokens(s.cards, s.answers).to(device))        # (B, T, 4)
        loss = F.cross_entropy(logits.reshape(-1, N_VALUES), s.answers.to(device).reshape(-1))
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step)
        if live is not None:
            live.update(step + 1, loss=losses[-1])
    return model, losses


@dataclass
class ContextCurve:
    """Accuracy by trials since the last switch (0..max_lag), for the model and the Bayes observer."""

    lag: list[int]
    model: list[float]
    observer: list[float]
    model_perseverative_rate: float   # share of the model's errors (lags 1..4) that give the old rule's answer
    count: list[int]                  # trials averaged at each lag
    model_overall: float = float("nan")     # accuracy over every trial of every stream
    observer_overall: float = float("nan")  # the observer's, same trials: optimal on average over these,
    #                                         not at every lag (at lag 0 it still bets on the old rule)
    observer_perseverative_rate: float = float("nan")  # the same share for the observer's argmax guesses
    model_set_loss_rate: float = float("nan")     # errors after >= 3 correct in a row under the current rule
    observer_set_loss_rate: float = float("nan")  # the same for the observer (its errors there are bad luck)
    excess_errors: list[float] | None = None      # model's error rate − observer's, at each lag


@torch.no_grad()
def perseveration_mask(since_switch: torch.Tensor, last_lag: int = 4) -> torch.Tensor:
    """Trials whose errors can count as perseverative: lags 1..last_lag after a switch.

    Lag 0 is the switch trial itself, answered before any feedback under the new rule; only after its
    feedback does keeping the old rule become perseveration (the WCST's definition).
    """
    return (since_switch >= 1) & (since_switch <= last_lag)


def evaluate_context(model: ContextTransformer, *, n: int = 2000, hazard: float | None = None,
                     max_lag: int = 9, seed: int = 123) -> ContextCurve:
    """Held-out streams: the model's argmax accuracy and the observer's, by trials since a switch."""
    cfg = model.cfg
    h = cfg.hazard if hazard is None else hazard
    s = wcst_stream(n, cfg.length, h, gen=torch.Generator().manual_seed(seed))
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    pred = model(trial_tokens(s.cards, s.answers).to(device)).argmax(-1).cpu()  # (B, T)
    model.train(was)
    observer = bayes_observer(s.cards, s.answers, h)
    obs = observer.correct                                                  # (B, T)
    obs_pred = observer.predictive.argmax(-1)                               # (B, T), ties to the lowest value
    right = (pred == s.answers).double()                                    # (B, T)
    # the old rule's answer at each trial: the rule before the last switch
    prev_rule = torch.cat([s.rules[:, :1], s.rules[:, :-1]], 1)             # (B, T)
    old_rule = prev_rule.clone()
    for t in range(1, cfg.length):  # carry the pre-switch rule forward until the next switch
        old_rule[:, t] = torch.where(s.since_switch[:, t] == 0, s.rules[:, t - 1], old_rule[:, t - 1])
    old_answer = torch.gather(s.cards, 2, old_rule.unsqueeze(-1)).squeeze(-1)  # (B, T)
    lags = list(range(max_lag + 1))
    model_acc, obs_acc, counts = [], [], []
    for k in lags:
        m = s.since_switch == k
        counts.append(int(m.sum()))
        model_acc.append(float(right[m].mean()) if m.any() else float("nan"))
        obs_acc.append(float(obs[m].mean()) if m.any() else float("nan"))
    early = perseveration_mask(s.since_switch)                               # (B, T)
    rate = perseverative_rate(pred[early].numpy(), old_answer[early].numpy(), s.answers[early].numpy())
    obs_rate = perseverative_rate(obs_pred[early].numpy(), old_answer[early].numpy(), s.answers[early].numpy())
    since = s.since_switch.numpy()
    return ContextCurve(lags, model_acc, obs_acc, rate, counts, float(right.mean()), float(obs.mean()), obs_rate,
                        set_loss_rate(right.numpy() > 0, since), set_loss_rate(obs.numpy() > 0, since),
                        excess_errors_by_lag(right.numpy(), obs.numpy(), since, max_lag).tolist())


# --- reading the transformer's attention after a switch ----------------------------------------------

def window_mass(patterns: torch.Tensor, start: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Attention from trial ``query`` onto the tokens start..query, per layer, averaged over heads.

    patterns (L, B, H, T, T), start and query (B,) long -> (L, B). Token j carries the feedback of trial
    j − 1, so with start = s + 1 the window holds the evidence of trials s … query − 1."""
    if patterns.dim() != 5 or patterns.shape[-1] != patterns.shape[-2]:
        raise ValueError(f"patterns must be (L, B, H, T, T), got {tuple(patterns.shape)}")
    L, B, H, T, _ = patterns.shape
    if start.shape != (B,) or query.shape != (B,):
        raise ValueError(f"start {tuple(start.shape)} and query {tuple(query.shape)} must both be ({B},)")
    rows = patterns.permute(1, 3, 0, 2, 4)[torch.arange(B), query]             # (B, L, H, T): the query's row
    keys = torch.arange(T)
    inside = (keys >= start[:, None]) & (keys <= query[:, None])               # (B, T)
    return (rows * inside[:, None, None]).sum(-1).mean(-1).T                   # (B, L, H) -> (B, L) -> (L, B)


@torch.no_grad()
def post_switch_attention(model: ContextTransformer, *, n: int = 1000, max_lag: int = 5, seed: int = 321) -> dict:
    """Attention on post-switch evidence by lag, against a no-switch control (so recency is ruled out).

    Each stream has one switch, at a trial s drawn so that s + max_lag fits; its control has the same
    cards and no switch (the first rule throughout). At lag k the query is trial s + k and the window
    tokens s+1 … s+k, which carry the feedback of trials s … s+k−1: under the switch that evidence
    contradicts the old rule, in the control it does not, and the positions are the same in both.
    Returns {"lag": [1..max_lag], "switch": (L, lags), "control": (L, lags)} (means over streams)."""
    T = model.cfg.length
    if not 1 <= max_lag <= T - 3:
        raise ValueError(f"max_lag must be in 1..{T - 3} for streams of {T} trials, got {max_lag}")
    gen = torch.Generator().manual_seed(seed)
    s = wcst_stream(n, T, 0.0, gen=gen)                                        # cards and a first rule, no switch
    switch_at = torch.randint(2, T - max_lag, (n,), generator=gen)             # (B,)
    step = torch.randint(1, N_FEATURES, (n,), generator=gen)
    new_rule = (s.rules[:, 0] + step) % N_FEATURES                             # (B,)
    after = torch.arange(T)[None, :] >= switch_at[:, None]                     # (B, T)
    rules = torch.where(after, new_rule[:, None], s.rules)                     # (B, T)
    answers = s.cards.gather(2, rules.unsqueeze(-1)).squeeze(-1)               # (B, T)
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = {"lag": list(range(1, max_lag + 1))}
    for name, ans in (("switch", answers), ("control", s.answers)):
        _, cache = run_with_cache(model, trial_tokens(s.cards, ans).to(device))
        patterns = cache.patterns().cpu()                                      # (L, B, H, T, T)
        out[name] = torch.stack([window_mass(patterns, switch_at + 1, switch_at + k).mean(1)
                                 for k in out["lag"]], 1).numpy()              # (L, lags)
    model.train(was)
    return out
