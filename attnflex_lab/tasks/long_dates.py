"""Dates buried in filler words: the dates task made long, to show the fixed-vector bottleneck.

"ref kept the note 3 March 1987 page ok" -> "1987-03-03". Lowercase filler words (none a month or
weekday name, or the start of one) go before and after the date, so the source grows from a few
characters to about a hundred while the translation stays the same; the true alignment shifts by
the length of the prefix. An encoder–decoder that must squeeze the whole source into its last
state degrades as the source grows; one with attention reads the date wherever it is
(Bahdanau et al., 2015, figure 2).
"""

from __future__ import annotations

import random

import torch
from torch.utils.data import TensorDataset

from .dates import (
    FORMATS,
    MAX_SOURCE_LEN,
    MONTHS,
    SOURCE_VOCAB,
    TARGET_VOCAB,
    UNDEFINED,
    WEEKDAYS,
    DateExample,
    DateFormat,
    DatesData,
    random_example,
)

FILLER = ("the", "note", "log", "entry", "ref", "filed", "copy", "seen", "kept", "here", "item",
          "page", "box", "ok", "per", "via", "text", "read", "held", "line")
# The formats written with digits only: every output digit is copied from somewhere, so a model
# with attention has only to find it, and one without must carry all eight digits in one vector.
NUMERIC_FORMATS: tuple[DateFormat, ...] = tuple(f for f in FORMATS if not any(
    c in f.template for c in "BbAa"))
MAX_WORDS = 16                          # filler words per example, at most
MAX_LONG_SOURCE_LEN = MAX_SOURCE_LEN + MAX_WORDS * (1 + max(map(len, FILLER)))


def _names() -> set[str]:
    return {n.lower()[:k] for n in (*MONTHS, *WEEKDAYS) for k in range(3, len(n) + 1)}


assert not set(FILLER) & _names(), "a filler word reads as a month or weekday name"


def with_filler(example: DateExample, rng: random.Random, n_words: int) -> DateExample:
    """``example`` with ``n_words`` filler words split at random before and after the date."""
    words = [rng.choice(FILLER) for _ in range(n_words)]
    k = rng.randint(0, n_words)                       # words before the date
    prefix = "".join(w + " " for w in words[:k])
    suffix = "".join(" " + w for w in words[k:])
    shift = len(prefix)
    align = tuple(a + shift if a != UNDEFINED else UNDEFINED for a in example.alignment)
    return DateExample(prefix + example.text + suffix, example.iso, example.format, align)


def long_examples(n: int, seed: int, max_words: int = MAX_WORDS,
                  formats: tuple[DateFormat, ...] = FORMATS) -> list[DateExample]:
    """``n`` distinct examples in ``formats`` with 0..``max_words`` filler words each, from ``seed``."""
    if not 0 <= max_words <= MAX_WORDS:
        raise ValueError(f"max_words must be in 0..{MAX_WORDS}, got {max_words}")
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        ex = with_filler(random_example(rng, rng.choice(formats)), rng, rng.randint(0, max_words))
        if ex.text not in seen:
            seen.add(ex.text)
            out.append(ex)
    return out


def encode_long(examples: list[DateExample]) -> TensorDataset:
    """(source ids (N, MAX_LONG_SOURCE_LEN) padded with 0, target ids (N, 10), alignment (N, 10))."""
    src = torch.tensor([SOURCE_VOCAB.encode(e.text, MAX_LONG_SOURCE_LEN) for e in examples])
    tgt = torch.tensor([TARGET_VOCAB.encode(e.iso) for e in examples])
    align = torch.tensor([list(e.alignment) for e in examples], dtype=torch.int64)
    return TensorDataset(src, tgt, align)


def make_long_dates(n_train: int = 20_000, n_val: int = 1_000, n_test: int = 2_000, seed: int = 0,
                    max_words: int = MAX_WORDS, formats: tuple[DateFormat, ...] = FORMATS
                    ) -> DatesData:
    """Seeded train / val / test sets of dates in filler, no source string shared between splits."""
    pool = long_examples(n_train + n_val + n_test, seed, max_words, formats)
    parts = {"train": pool[:n_train], "val": pool[n_train:n_train + n_val],
             "test": pool[n_train + n_val:]}
    tensors = {k: encode_long(v) for k, v in parts.items()}
    return DatesData(tensors["train"], tensors["val"], tensors["test"], parts)
