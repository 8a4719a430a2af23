"""Recipe "lm": TinyGPT learns the generated stories character by character.

Sizes come from the profile (``GPT_PRESETS``): a few thousand parameters in smoke, GPT-2 small's
shape (12 layers, 12 heads, 768 wide, 1024 context) in gpu, trained there in bf16 (fp16 on
pre-Ampere GPUs such as the T4) with ``torch.compile``. The final metrics add ``val_loss``
(nats per character on the held-out tail of the corpus) and ``tokens_per_second`` (global:
every rank's tokens, over the training time: evaluation and checkpoints excluded).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..models.transformer import GPTConfig, TinyGPT, check_token_range
from ..perf.flops import preferred_amp_dtype
from ..profiles import by_profile
from ..tasks.text import char_lm_data
from ..training import TrainConfig
from ..training.batches import gather
from ..training.loop import synchronize
from .registry import Recipe, RecipeRun, register

# Sizes per profile. "gpu" is GPT-2 small's shape (12 layers, 12 heads, 768 wide, 1024 context);
# with a char vocabulary it has ~85M parameters rather than GPT-2's 124M (whose 50257-token
# embedding alone is 38.6M).
GPT_PRESETS = {
    "smoke": dict(block_size=32, n_layers=2, n_heads=2, d_model=32),
    "cpu": dict(block_size=128, n_layers=4, n_heads=4, d_model=128),
    "gpu": dict(block_size=1024, n_layers=12, n_heads=12, d_model=768),
}


# Lesson 05's short run of this recipe, per profile (TrainConfig overrides): enough to beat the
# unigram entropy in smoke and the bigram entropy in cpu (tests/test_learning_lm.py); gpu runs it all.
SHORT_RUN = {
    "smoke": dict(steps=40),
    "cpu": dict(steps=70, batch_size=16, warmup_steps=10),
    "gpu": {},
}


def char_entropies(tokens: torch.Tensor, vocab_size: int) -> tuple[float, float]:
    """(H1, H2) in nats per character: the best loss of a model that sees no context (unigram
    entropy −Σ p(c) ln p(c)) and of one that sees the previous character only (bigram entropy
    −Σ p(a, b) ln p(b | a)), both measured on ``tokens`` (T,)."""
    counts = torch.bincount(tokens, minlength=vocab_size).double()          # (V,)
    p1 = counts[counts > 0] / counts.sum()
    pairs = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)        # (V, V) counts of (a, b)
    pairs.index_put_((tokens[:-1], tokens[1:]), torch.ones(len(tokens) - 1, dtype=torch.float64),
                     accumulate=True)
    seen = pairs > 0
    p_ab = pairs / pairs.sum()                                              # joint
    p_b_given_a = pairs / pairs.sum(1, keepdim=True).clamp_min(1)           # rows: conditional
    return -(p1 * p1.log()).sum().item(), -(p_ab[seen] * p_b_given_a[seen].log()).sum().item()


def gpt_config(vocab_size: int, profile_name: str | None = None, **overrides) -> GPTConfig:
    """The TinyGPT size for the current (or given) profile, with ``overrides`` applied."""
    preset = by_profile(**GPT_PRESETS, profile_name=profile_name)
    return GPTConfig(**{**preset, "vocab_size": vocab_size, **overrides})


def lm_loss(model, batch) -> torch.Tensor:
    x, y = batch                                               # (B, T), (B, T)
    logits = model(x)                                          # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # mean nats per character


def lm_eval(model, data, max_windows: int = 64, batch_size: int = 16) -> dict:
    """Mean loss on up to ``max_windows`` non-overlapping windows spread over ``data``."""
    device = next(model.parameters()).device
    starts = window_starts(len(data), data.block_size, max_windows)  # (≤ max_windows,)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            x, y = (t.to(device) for t in gather(data, starts[i:i + batch_size]))  # (b, T), (b, T)
            logits = model(x)                                  # (b, T, V)
            total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()
            count += y.numel()
    return {"val_loss": total / count}


def window_starts(n: int, block_size: int, max_windows: int) -> torch.Tensor:
    """Starts of up to ``max_windows`` non-overlapping windows, evenly spread over all ``n`` starts
    (taking the first ones would score only the beginning of the split)."""
    starts = torch.arange(0, n, block_size)                  # (W,) every non-overlapping window
    if len(starts) <= max_windows:
        return starts
    pick = torch.linspace(0, len(starts) - 1, max_windows).round().long()  # (max_windows,) distinct
    return starts[pick]


class Throughput:
    """A fit() callback that times training and counts the tokens seen by all ranks together.

    The time excludes evaluation and checkpoints (``state.overhead_seconds``): they are not
    training, and counting them would make tokens/s depend on ``eval_every``."""

    def __init__(self, block_size: int):
        self.block_size = block_size  # tokens per sequence
        self.tokens_per_step, self.steps, self.seconds = 0, 0, 0.0
        self._started, self._first_step, self._overhead = None, 0, 0.0  # set when fit() starts

    def on_fit_start(self, state) -> None:
        self.tokens_per_step = state.cfg.batch_size * self.block_size  # the global batch
        synchronize(next(state.model.parameters()).device)
        self._started, self._first_step = time.perf_counter(), state.step
        self._overhead = state.overhead_seconds

    def on_fit_end(self, state) -> None:
        if self._started is not None:
            synchronize(next(state.model.parameters()).device)
            wall = time.perf_counter() - self._started
            self.seconds = wall - (state.overhead_seconds - self._overhead)
            self.steps = state.step - self._first_step

    @property
    def tokens_per_second(self) -> float:
        return self.steps * self.tokens_per_step / self.seconds if self.seconds else 0.0


def train_config(profile: str, seed: int) -> TrainConfig:
    gpu = profile == "gpu" and torch.cuda.is_available()
    return TrainConfig(
        steps=by_profile(smoke=20, cpu=1500, gpu=2000, profile_name=profile),
        batch_size=by_profile(smoke=8, cpu=32, gpu=16, profile_name=profile),  # gpu: fits a 15 GB T4
        lr=by_profile(smoke=3e-3, cpu=2e-3, gpu=6e-4, profile_name=profile),
        weight_decay=0.1,
        warmup_steps=by_profile(smoke=2, cpu=100, gpu=200, profile_name=profile),
        amp_dtype=preferred_amp_dtype("cuda") if gpu else None,  # bf16 from Ampere on, else fp16
        compile=gpu,                          # fit() falls back cleanly where compile fails
        eval_every=by_profile(smoke=10, cpu=250, gpu=250, profile_name=profile),
        seed=seed,
    )


def corpus_chars(profile: str) -> int:
    """Characters of generated stories the recipe trains on (the server rebuilds the vocabulary)."""
    return by_profile(smoke=20_000, cpu=400_000, gpu=5_000_000, profile_name=profile)


def build(profile: str, seed: int) -> RecipeRun:
    preset = gpt_config(vocab_size=1, profile_name=profile)       # the size; vocab set below
    n_chars = corpus_chars(profile)
    train, val, tokenizer = char_lm_data(n_chars, preset.block_size, seed=seed)
    for split in (train, val):  # once here, so no training step checks ids on the device
        check_token_range(split.tokens, tokenizer.vocab_size)
    torch.manual_seed(seed)
    model = TinyGPT(gpt_config(tokenizer.vocab_size, profile_name=profile))
    cfg = train_config(profile, seed)
    meter = Throughput(preset.block_size)

    def final_metrics(trained) -> dict:
        trained.eval()
        return {**lm_eval(trained, val), "tokens_per_second": round(meter.tokens_per_second, 1),
                "n_params": trained.num_params()}

    return RecipeRun(model=model, train_data=train, val_data=val, cfg=cfg, loss_fn=lm_loss,
                     eval_fn=lm_eval, final_metrics=final_metrics, callbacks=(meter,),
                     extras={"tokenizer": tokenizer})


register(Recipe("lm", "TinyGPT, a char-level language model on generated stories", build))
