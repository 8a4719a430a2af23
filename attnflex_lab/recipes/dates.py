"""Recipe "dates": Bahdanau-attention seq2seq translating human dates to ISO 8601."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import alignment_accuracy, exact_match
from ..models.seq2seq import Seq2SeqAttention, Seq2SeqConfig
from ..profiles import by_profile
from ..tasks.dates import BOS, SOURCE_VOCAB, TARGET_VOCAB, make_dates
from ..training import TrainConfig
from .registry import Recipe, RecipeRun, register


def dates_loss(model, batch) -> torch.Tensor:
    src, tgt, _ = batch                                # (B, S), (B, T), (B, T)
    logits, _ = model(src, tgt)                        # (B, T, V) by teacher forcing
    return F.cross_entropy(logits.flatten(0, 1), tgt.flatten())  # (B·T, V) vs (B·T,)


def translate(model, src: torch.Tensor, batch_size: int = 1024
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy translations (N, T) and attention maps (N, T, S) for source ids (N, S)."""
    device = next(model.parameters()).device
    tokens, alphas = [], []
    for chunk in src.split(batch_size):                 # (b, S) each
        tok, alpha = model.generate(chunk.to(device))    # (b, T), (b, T, S)
        tokens.append(tok.cpu())
        alphas.append(alpha.cpu())
    return torch.cat(tokens), torch.cat(alphas)


def dates_eval(model, data) -> dict:
    src, tgt, align = data.tensors
    tokens, alpha = translate(model, src)
    return {
        "exact_match": exact_match(tokens, tgt),
        "char_accuracy": (tokens == tgt).float().mean().item(),
        "alignment_accuracy": alignment_accuracy(alpha, align, tolerance=1),
        "alignment_exact": alignment_accuracy(alpha, align, tolerance=0),
    }


def new_model() -> Seq2SeqAttention:
    return Seq2SeqAttention(Seq2SeqConfig(src_vocab=len(SOURCE_VOCAB), tgt_vocab=len(TARGET_VOCAB),
                                          bos_id=TARGET_VOCAB.stoi[BOS]))


def train_config(profile: str, seed: int) -> TrainConfig:
    return TrainConfig(
        steps=by_profile(smoke=40, cpu=800, gpu=3000, profile_name=profile),
        batch_size=by_profile(smoke=32, cpu=64, gpu=128, profile_name=profile),
        lr=3e-3,
        warmup_steps=by_profile(smoke=5, cpu=50, gpu=200, profile_name=profile),
        eval_every=by_profile(smoke=20, cpu=200, gpu=500, profile_name=profile),
        seed=seed,
    )


def build(profile: str, seed: int) -> RecipeRun:
    data = make_dates(n_train=by_profile(smoke=1_000, cpu=20_000, gpu=50_000, profile_name=profile),
                      n_val=by_profile(smoke=100, cpu=500, gpu=2_000, profile_name=profile),
                      n_test=by_profile(smoke=200, cpu=2_000, gpu=5_000, profile_name=profile),
                      seed=seed)
    torch.manual_seed(seed)
    model = new_model()

    def final_metrics(trained) -> dict:
        trained.eval()
        return dates_eval(trained, data.test)

    return RecipeRun(model=model, train_data=data.train, val_data=data.val,
                     cfg=train_config(profile, seed), loss_fn=dates_loss, eval_fn=dates_eval,
                     final_metrics=final_metrics, extras={"data": data})


register(Recipe("dates", "additive-attention seq2seq: human dates -> ISO 8601", build))
