"""A tiny hand-built word table, so the attention explorer shows a pattern that means something.

Each word is a vector of named features (``FEATURES``); a key is the word's vector. A query says
what a word *looks for*, through a fixed relation (``RELATIONS``): a noun looks for its determiner,
a determiner for its noun, a verb for an animal (its subject), a preposition for a thing (its
object). Scores q·k are then large exactly where a word finds what it looks for. Nothing is
learned: a trained model's heads find relations like these on their own (lesson 05).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FEATURES = ("determiner", "noun", "verb", "preposition", "animal", "thing")
GAIN = 3.0  # feature strength: a match scores GAIN² = 9, so at τ = 1 with 1/√6 the match clearly wins

_WORD_FEATURES = {
    "the": ("determiner",), "a": ("determiner",),
    "cat": ("noun", "animal"), "dog": ("noun", "animal"),
    "mat": ("noun", "thing"), "rug": ("noun", "thing"),
    "sat": ("verb",), "lay": ("verb",),
    "on": ("preposition",), "under": ("preposition",),
}
VOCABULARY = tuple(_WORD_FEATURES)

# feature of the word -> feature it looks for
RELATIONS = {"noun": "determiner", "determiner": "noun", "verb": "animal", "preposition": "thing"}


def _check_words(words: Sequence[str]) -> list[str]:
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, e.g. 'the cat sat'.split(), not one string")
    unknown = [w for w in words if w not in _WORD_FEATURES]
    if unknown or not words:
        raise ValueError(f"unknown words {unknown}; the table knows {list(VOCABULARY)}")
    return list(words)


def embed(words: Sequence[str]) -> torch.Tensor:
    """Keys: one (F,) feature vector per word, GAIN where the word has the feature. Returns (S, F)."""
    words = _check_words(words)
    table = torch.zeros(len(words), len(FEATURES))                      # (S, F)
    for row, word in enumerate(words):
        for feature in _WORD_FEATURES[word]:
            table[row, FEATURES.index(feature)] = GAIN
    return table


def relation_matrix() -> torch.Tensor:
    """W (F, F) with W[f, g] = 1 when a word with feature f looks for feature g."""
    relation = torch.zeros(len(FEATURES), len(FEATURES))
    for source, target in RELATIONS.items():
        relation[FEATURES.index(source), FEATURES.index(target)] = 1.0
    return relation


def relation_queries(words: Sequence[str]) -> torch.Tensor:
    """Queries: what each word looks for, q = e W. Returns (T, F)."""
    return embed(words) @ relation_matrix()                            # (T, F) @ (F, F) -> (T, F)


__all__ = ["FEATURES", "RELATIONS", "VOCABULARY", "embed", "relation_matrix", "relation_queries"]
