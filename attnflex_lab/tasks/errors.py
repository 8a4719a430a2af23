"""Real short texts with real labels: does a Python error message belong to a TypeError or a ValueError?

No labelled sentiment corpus ships inside an installed package, so the lab bundles
``attnflex_lab/data/python_errors.csv`` (card in data/README.md): 1,262 distinct messages of
``raise TypeError(...)`` / ``raise ValueError(...)`` in CPython 3.11's standard library (PSF
licence), written by its developers. The label is the exception they chose; the messages are
English ("expected str, bytes or os.PathLike object, not {}", "negative shift count"), and a few
words decide many of them, which is what attention pooling can show.

``load_errors`` reads it, ``tokenize`` splits a message into lower-case words, ``Vocabulary``
maps words to ids (built on the training split only), ``encode`` pads to (N, T), ``delete_tokens``
removes chosen positions (for the deletion check).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

import torch

from .bundled import data_path

LABELS = ("TypeError", "ValueError")
_WORD = re.compile(r"\{\}|%[a-z]|[a-z]+|\d+")
PAD, UNK = 0, 1


@dataclass
class Messages:
    texts: list[str]
    labels: torch.Tensor        # (N,) long, index into LABELS

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: torch.Tensor) -> Messages:
        return Messages([self.texts[i] for i in index.tolist()], self.labels[index])


def load_errors() -> Messages:
    with data_path("python_errors.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return Messages([r["text"] for r in rows], torch.tensor([LABELS.index(r["label"]) for r in rows]))


def split_messages(data: Messages, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.25
                   ) -> tuple[Messages, Messages, Messages]:
    """A seeded permutation cut into train / val / test (the same seed gives the same split)."""
    n = len(data)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))   # (N,)
    n_test, n_val = int(n * test_fraction), int(n * val_fraction)
    return (data.subset(order[n_test + n_val:]), data.subset(order[n_test:n_test + n_val]),
            data.subset(order[:n_test]))


def tokenize(text: str) -> list[str]:
    """Lower-case words, numbers, and placeholders ("{}", "%s") as tokens of their own."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Words seen at least ``min_count`` times in the texts it is built on; others map to <unk>."""

    def __init__(self, texts: list[str], min_count: int = 2):
        counts: dict[str, int] = {}
        for text in texts:
            for word in tokenize(text):
                counts[word] = counts.get(word, 0) + 1
        kept = sorted(w for w, c in counts.items() if c >= min_count)
        self.words = ["<pad>", "<unk>", *kept]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str], max_len: int = 24) -> torch.Tensor:
        """(N, max_len) long ids, padded with 0 at the end, cut after max_len words."""
        ids = torch.zeros(len(texts), max_len, dtype=torch.long)
        for row, text in enumerate(texts):
            words = tokenize(text)[:max_len]
            ids[row, :len(words)] = torch.tensor([self.index.get(w, UNK) for w in words], dtype=torch.long)
        return ids

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [self.words[i] for i in ids.tolist() if i != PAD]


def delete_tokens(ids: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """Remove the positions where ``drop`` (N, T) is True and close the gaps (padding stays at the end)."""
    if drop.shape != ids.shape or drop.dtype != torch.bool:
        raise ValueError(f"drop must be a bool tensor shaped like ids {tuple(ids.shape)}, got "
                         f"{tuple(drop.shape)} {drop.dtype}")
    keep = (ids != PAD) & ~drop                                           # (N, T)
    out = torch.zeros_like(ids)
    for row in range(len(ids)):
        kept = ids[row][keep[row]]
        out[row, :len(kept)] = kept
    return out


def top_k_positions(weights: torch.Tensor, ids: torch.Tensor, k: int) -> torch.Tensor:
    """(N, T) bool: the k real tokens with the largest weights in each row."""
    scores = weights.masked_fill(ids == PAD, float("-inf"))              # (N, T)
    chosen = scores.topk(k, dim=1).indices                               # (N, k)
    return torch.zeros_like(ids, dtype=torch.bool).scatter_(1, chosen, True)


def random_positions(ids: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """(N, T) bool: k real tokens per row, chosen uniformly at random."""
    noise = torch.rand(ids.shape, generator=gen).masked_fill(ids == PAD, float("-inf"))  # (N, T)
    chosen = noise.topk(k, dim=1).indices                                # (N, k)
    return torch.zeros_like(ids, dtype=torch.bool).scatter_(1, chosen, True)
