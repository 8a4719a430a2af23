"""Recipe "dates": Bahdanau-attention seq2seq translating human dates to ISO 8601."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import alignment_accuracy, exact_match
from ..models.seq2seq import Seq2SeqAttention, Seq2SeqConfig
from ..profiles import by_profile
from ..tasks.dates import BOS, SOURCE_VOCAB, TARGET_VOCAB, make_dates
from ..tasks.long_dates import NUMERIC_FORMATS, make_long_dates
from ..training import TrainConfig
from .registry import Recipe, RecipeRun, register


def dates_loss(model, batch) -> torch.Tensor:
    src, tgt, _ = batch                                # (B, S), (B, T), (B, T)
    src = src[:, :int((src != 0).sum(1).max())]        # (B, S) -> (B, S_batch): padding costs time only
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
    """gpu trains about twice as long as cpu, at the same batch, so that the full-scale tier
    (tests/long/test_long_lesson04.py) checks it on CPU for three seeds in minutes."""
    return TrainConfig(
        steps=by_profile(smoke=40, cpu=800, gpu=1500, profile_name=profile),
        batch_size=by_profile(smoke=32, cpu=64, gpu=64, profile_name=profile),
        lr=3e-3,
        warmup_steps=by_profile(smoke=5, cpu=50, gpu=100, profile_name=profile),
        eval_every=by_profile(smoke=20, cpu=200, gpu=250, profile_name=profile),
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


# --- the bottleneck: dates in filler words, with and without attention (lesson 04, step 7) -------

def length_bins(src: torch.Tensor, edges: tuple[int, ...]) -> torch.Tensor:
    """The bin (0..len(edges)) of each source's length in characters: src (N, S) -> (N,)."""
    return torch.bucketize((src != 0).sum(1), torch.tensor(edges), right=True)


def accuracy_by_length(model, data, edges: tuple[int, ...]) -> dict[str, list[float]]:
    """Exact match and character accuracy in each source-length bin (split at ``edges``).

    Returns {"exact_match": [per bin], "char_accuracy": [per bin]}, NaN for an empty bin.
    """
    src, tgt, _ = data.tensors
    tokens, _ = translate(model, src)
    chars = (tokens == tgt).float()                       # (N, T)
    scores = {"exact_match": chars.min(-1).values, "char_accuracy": chars.mean(-1)}  # (N,) each
    bins = length_bins(src, edges)
    return {k: [v[bins == b].mean().item() if (bins == b).any() else float("nan")
                for b in range(len(edges) + 1)] for k, v in scores.items()}


LONG_EDGES = (25, 40, 55)          # source-length bins: <25, 25-39, 40-54, >=55 characters
LONG_WORDS = 10                    # filler words per example, at most


def new_long_model(attention: bool) -> Seq2SeqAttention:
    """The dates model, narrower (H = 32) so that both variants train in seconds."""
    return Seq2SeqAttention(Seq2SeqConfig(src_vocab=len(SOURCE_VOCAB), tgt_vocab=len(TARGET_VOCAB),
                                          bos_id=TARGET_VOCAB.stoi[BOS], embed=16, hidden=32,
                                          dec_hidden=64, attn=32, attention=attention))


def long_train_config(profile: str, seed: int) -> TrainConfig:
    """cpu stops early (200 steps: who learns faster); gpu trains both models to a plateau (1,500
    steps, the same batch: tests/long/test_long_lesson04.py checks that the validation curves are
    flat over the last 500 steps). Both fit the full-scale tier on two CPU cores."""
    return TrainConfig(
        steps=by_profile(smoke=20, cpu=200, gpu=1500, profile_name=profile),
        batch_size=32,
        lr=1e-2,
        warmup_steps=by_profile(smoke=5, cpu=20, gpu=100, profile_name=profile),
        eval_every=by_profile(smoke=10, cpu=50, gpu=250, profile_name=profile),   # the learning curves
        seed=seed,
    )


def _build_long(attention: bool):
    def build(profile: str, seed: int) -> RecipeRun:
        data = make_long_dates(n_train=by_profile(smoke=1_000, cpu=10_000, gpu=50_000,
                                                  profile_name=profile),
                               n_val=by_profile(smoke=50, cpu=200, gpu=2_000, profile_name=profile),
                               n_test=by_profile(smoke=200, cpu=1_000, gpu=5_000,
                                                 profile_name=profile), seed=seed,
                               max_words=LONG_WORDS, formats=NUMERIC_FORMATS)
        torch.manual_seed(seed)
        model = new_long_model(attention)

        def final_metrics(trained) -> dict:
            trained.eval()
            by_length = accuracy_by_length(trained, data.test, LONG_EDGES)
            return {"exact_match": exact_match(translate(trained, data.test.tensors[0])[0],
                                               data.test.tensors[1]),
                    "by_length": by_length}

        def eval_fn(model, data) -> dict:
            return {"exact_match": exact_match(translate(model, data.tensors[0])[0], data.tensors[1])}

        return RecipeRun(model=model, train_data=data.train, val_data=data.val,
                         cfg=long_train_config(profile, seed), loss_fn=dates_loss, eval_fn=eval_fn,
                         final_metrics=final_metrics, extras={"data": data})
    return build


register(Recipe("dates_long", "dates in filler words, with additive attention", _build_long(True)))
register(Recipe("dates_long_noattn", "dates in filler words, last encoder state only (no attention)",
                _build_long(False)))


def alignment_offsets(weights: torch.Tensor, true_positions: torch.Tensor) -> torch.Tensor:
    """argmax_j α_tj − (true position) for every output step whose true position is defined.

    weights (N, T, S), true_positions (N, T) with -1 where undefined -> offsets (n_defined,).
    0 is the exact character; ±1 a neighbour (for a digit, often the next digit of the field).
    """
    defined = true_positions >= 0                           # (N, T)
    return (weights.argmax(-1) - true_positions)[defined]   # (N, T) -> (n_defined,)


def century_weight_on_decade(weights: torch.Tensor, examples) -> torch.Tensor:
    """(n, 2): for each example with a two-digit year, the weight that the century's two output
    characters put on the year's two source digits (lesson 04: the only place the century can come from).

    weights (N, T, S) the attention on ``examples`` (N ``DateExample``s); a two-digit year is one whose
    century is not copied (alignment -1) while its decade digits are.
    """
    rows = [(i, e.alignment[2], e.alignment[3]) for i, e in enumerate(examples)
            if e.alignment[0] == -1 and e.alignment[2] >= 0 and e.alignment[3] >= 0]
    if not rows:
        raise ValueError("no example has a two-digit year (century not copied, decade digits copied)")
    index, tens, ones = (torch.tensor(c) for c in zip(*rows, strict=True))        # (n,) each
    century = weights[index, :2]                                                 # (n, 2, S)
    return century.gather(2, tens[:, None, None].expand(-1, 2, 1)).squeeze(2) + \
        century.gather(2, ones[:, None, None].expand(-1, 2, 1)).squeeze(2)       # (n, 2)
