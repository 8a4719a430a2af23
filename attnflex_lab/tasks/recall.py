"""Associative recall: key-value pairs, then keys whose values must be recalled.

An example stores ``n_pairs`` pairs (k_j, v_j) with distinct keys (values drawn with replacement), then
asks for the values of ``n_queries`` distinct stored keys. This is the multi-query associative recall of
Arora et al. 2023 ("Zoology"): softmax attention solves it with one sharp look-up per question, while
attention whose weights cannot concentrate on one key (linear attention) or cannot reach it (a short
sliding window) falls behind. Key ids are 0..n_keys−1, value ids 0..n_values−1; a batch is a pure
function of (config, seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RecallConfig:
    n_keys: int = 128      # distinct key tokens
    n_values: int = 32     # distinct value tokens (chance accuracy 1 / n_values)
    n_pairs: int = 64      # N: key-value pairs stored per example
    n_queries: int = 16    # M: stored keys asked for

    def __post_init__(self):
        for name in ("n_keys", "n_values", "n_pairs", "n_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_pairs > self.n_keys:
            raise ValueError(f"n_pairs={self.n_pairs} distinct keys cannot be drawn from n_keys={self.n_keys}")
        if self.n_queries > self.n_pairs:
            raise ValueError(f"n_queries={self.n_queries} distinct questions need n_pairs ≥ n_queries, "
                             f"got n_pairs={self.n_pairs}")


def recall_pairs(task: RecallConfig, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pairs (B, N, 2) of (key id, value id), queries (B, M) key ids, answers (B, M) value ids)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    gen = torch.Generator().manual_seed(seed)
    keys = torch.rand(batch, task.n_keys, generator=gen).argsort(dim=-1)[:, :task.n_pairs]    # (B, N) distinct
    values = torch.randint(0, task.n_values, (batch, task.n_pairs), generator=gen)            # (B, N)
    asked = torch.rand(batch, task.n_pairs, generator=gen).argsort(dim=-1)[:, :task.n_queries]  # (B, M) pair ids
    return torch.stack([keys, values], dim=-1), keys.gather(1, asked), values.gather(1, asked)


__all__ = ["RecallConfig", "recall_pairs"]
