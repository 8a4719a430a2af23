"""Which attention can recall? Full, sliding-window and linear attention on associative recall.

Lesson 07's accuracy comparison (the Zoology study of Arora et al. 2023, at teaching size). One model with
one attention layer, where only the attention function differs between the arms:

- pair j of the context is one position, x_j = E_key[k_j] + E_value[v_j]   (B, N, C);
- each asked key is one query position, e_m = E_key[q_m]                   (B, M, C), attending over the pairs;
- a read-out maps the attention output (plus the query, a residual) to logits over the values.

Softmax attention can put almost all its weight on the one pair whose key matches. Linear attention weighs
pairs by φ(q)·φ(k) with φ = elu + 1 > 0: every pair gets weight, and one (C/H × C/H) state per head must hold
all N pairs at once. A sliding window of w keys sees only the last w pairs (the questions come after every
pair, as in a causal model), so it can answer about w / N of them.

``train_recall(variant, cfg, seed)`` trains one arm and returns its held-out curve; every arm gets the same
initial weights (``build_reader``), the same batches and the same number of steps: a matched budget.
``study_config(profile)`` holds the lesson's sizes per profile, shared by the notebook and the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_attention_inputs
from ..kernels import efficient
from ..profiles import by_profile, run_steps
from ..tasks.recall import RecallConfig, recall_pairs

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
VARIANTS = ("full", "sliding window", "linear")


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Sliding-window attention for questions asked after all S pairs: each of the M queries sees the
    last ``window`` keys, as the last position of a causal sequence would. q (..., M, D) -> (..., M, Dv).
    Equal to ``efficient.sliding_window_attention`` run for each query alone (bottom-right aligned)."""
    check_attention_inputs(q, k, v)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    lo = max(0, k.shape[-2] - window)
    return F.scaled_dot_product_attention(q, k[..., lo:, :], v[..., lo:, :])


def attention_for(variant: str, window: int) -> AttentionFn:
    """The attention function of one arm: exact softmax (SDPA; FlashAttention gives the same numbers),
    a sliding window over the last ``window`` pairs, or Katharopoulos et al.'s linear attention."""
    if variant == "full":
        return F.scaled_dot_product_attention
    if variant == "sliding window":
        return lambda q, k, v: window_attention(q, k, v, window)
    if variant == "linear":
        return efficient.linear_attention
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


class RecallReader(nn.Module):
    """Queries (B, M) read values from pairs (B, N, 2) through one multi-head attention layer."""

    def __init__(self, task: RecallConfig, d_model: int, n_heads: int, attention_fn: AttentionFn):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads, self.attention_fn = n_heads, attention_fn
        self.key_emb = nn.Embedding(task.n_keys, d_model)
        self.value_emb = nn.Embedding(task.n_values, d_model)
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, task.n_values))

    def forward(self, pairs: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """pairs (B, N, 2) of (key id, value id), queries (B, M) key ids -> logits (B, M, n_values)."""
        x = self.key_emb(pairs[..., 0]) + self.value_emb(pairs[..., 1])        # (B, N, C)
        e = self.key_emb(queries)                                               # (B, M, C)
        q = self._heads(self.q_proj(e))                                         # (B, H, M, C/H)
        k, v = self._heads(self.k_proj(x)), self._heads(self.v_proj(x))         # (B, H, N, C/H) each
        z = self.attention_fn(q, k, v).transpose(1, 2).flatten(2)               # (B, H, M, C/H) -> (B, M, C)
        return self.out(z + e)                                                  # (B, M, C) -> (B, M, n_values)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, L, C = t.shape
        return t.view(B, L, self.n_heads, C // self.n_heads).transpose(1, 2)    # (B, L, C) -> (B, H, L, C/H)


@dataclass
class RecallStudyConfig:
    task: RecallConfig = field(default_factory=RecallConfig)
    d_model: int = 16          # C, split over the heads: small, so a linear state must share its room
    n_heads: int = 2
    window: int = 16           # pairs the sliding window sees
    steps: int = 1500          # the same for every arm (matched budget)
    batch_size: int = 64
    lr: float = 3e-3
    eval_every: int = 100
    eval_size: int = 512       # held-out examples (a seed no training batch uses)


def study_config(profile_name: str | None = None) -> RecallStudyConfig:
    """The lesson's sizes: smoke (seconds: only exact attention's rise), cpu (1,500 steps: every arm on its
    plateau, measured over seeds 0-2) and gpu (3,000 steps)."""
    task = RecallConfig(n_keys=by_profile(smoke=32, cpu=128, gpu=128, profile_name=profile_name), n_values=32,
                        n_pairs=by_profile(smoke=16, cpu=64, gpu=64, profile_name=profile_name), n_queries=16)
    # smoke: wider heads and small batches, so that 40 quick steps show exact attention recalling (0.68-0.74
    # over seeds 0-2); smoke claims nothing more
    d_model, n_heads = by_profile(smoke=(64, 4), cpu=(16, 2), gpu=(16, 2), profile_name=profile_name)
    return RecallStudyConfig(task=task, d_model=d_model, n_heads=n_heads,
                             window=by_profile(smoke=4, cpu=16, gpu=16, profile_name=profile_name),
                             steps=by_profile(smoke=40, cpu=1500, gpu=3000, profile_name=profile_name),
                             eval_every=by_profile(smoke=20, cpu=100, gpu=100, profile_name=profile_name),
                             batch_size=by_profile(smoke=16, cpu=64, gpu=64, profile_name=profile_name),
                             eval_size=by_profile(smoke=128, cpu=512, gpu=512, profile_name=profile_name))


def build_reader(variant: str, cfg: RecallStudyConfig, seed: int) -> RecallReader:
    """One arm's model: the weights depend on ``seed`` only, never on the variant."""
    attention_fn = attention_for(variant, cfg.window)
    torch.manual_seed(seed)
    return RecallReader(cfg.task, cfg.d_model, cfg.n_heads, attention_fn)


def batch_seed(seed: int, step: int) -> int:
    """The training batch of ``step`` (the same for every arm of one seed)."""
    return seed * 1_000_003 + step


def held_out_seed(seed: int) -> int:
    """The held-out examples' seed. Seed s trains on batch seeds s · 1,000,003 + step, so runs shorter than
    10⁶ − 3 steps never draw it (tests/test_recall.py checks the lesson's seeds and budgets)."""
    return 10**6 + seed


def train_recall(variant: str, cfg: RecallStudyConfig, seed: int,
                 device: torch.device | str = "cpu") -> list[tuple[int, float]]:
    """Train one arm; return [(step, held-out recall accuracy)] every ``eval_every`` steps and at the end."""
    model = build_reader(variant, cfg, seed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    held_out = [t.to(device) for t in recall_pairs(cfg.task, cfg.eval_size, seed=held_out_seed(seed))]
    curve, steps = [], run_steps(cfg.steps)
    for step in range(steps + 1):
        if step % cfg.eval_every == 0 or step == steps:
            curve.append((step, recall_accuracy(model, *held_out)))
        if step == steps:
            break
        pairs, queries, answers = (t.to(device) for t in recall_pairs(cfg.task, cfg.batch_size,
                                                                      seed=batch_seed(seed, step)))
        loss = F.cross_entropy(model(pairs, queries).flatten(0, 1), answers.flatten())   # (B·M, n_values)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return curve


@torch.no_grad()
def recall_accuracy(model: RecallReader, pairs: torch.Tensor, queries: torch.Tensor, answers: torch.Tensor) -> float:
    """Share of questions whose argmax value is the stored one (chance: 1 / n_values)."""
    was_training = model.training
    model.eval()
    accuracy = (model(pairs, queries).argmax(dim=-1) == answers).float().mean().item()
    model.train(was_training)
    return accuracy


def late_growth(curve: list[tuple[int, float]], fraction: float = 0.2) -> float:
    """How much accuracy rose over the last ``fraction`` of training (near 0 or below: a plateau)."""
    last_step, last = curve[-1]
    earlier = [acc for step, acc in curve if step <= last_step * (1 - fraction)]
    return last - earlier[-1]


__all__ = ["VARIANTS", "RecallReader", "RecallStudyConfig", "attention_for", "build_reader", "late_growth",
           "recall_accuracy", "study_config", "train_recall", "window_attention"]
