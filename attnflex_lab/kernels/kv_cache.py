"""Generate with a KV cache, and run a ``TinyGPT``'s weights with a pluggable attention kernel.

The model has one attention forward (``modules.MultiHeadAttention``); this module keeps what sits
around it. A ``KVCache`` holds, per layer, the keys and values of every position seen so far, and
``model(new_ids, past_kv=cache)`` runs only the new tokens (Pope et al. 2022 on the cache at scale).
``generate_greedy`` appends the argmax token n times, either re-running the whole context every step
(O(T) work per token) or with the cache. ``gpt_forward(model, idx, attention_fn)`` is the model's own
forward with the attention kernel swapped (full, sliding-window or linear attention, lesson 07).

Dimension legend (lesson 00's table): B batch, T positions, S cached positions, C width, H heads,
D head width (``Dh`` in the code, which keeps D free), L layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention, aligned at the bottom right: the T queries are the last T of the S keys (a
    T = 1 query sees every cached key; a prefix's keys are in every query's past)."""
    T, S = q.shape[-2], k.shape[-2]
    if T > S:
        raise ValueError(f"causal_sdpa needs T ≤ S (queries are the last keys), got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}")
    if T == 1:
        return F.scaled_dot_product_attention(q, k, v)  # one new query: every key is in its past
    if T == S:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    allowed = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)  # (T, S)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


class LayerKV:
    """One attention layer's cached keys and values, (B, S, C) each: projected, before the split into
    heads and before any prefix (a prefix is the layer's own and is never cached)."""

    def __init__(self):
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's k, v (B, t, C); return every position's (B, S + t, C)."""
        if self.keys is not None:
            if k.shape[0] != self.keys.shape[0] or k.shape[-1] != self.keys.shape[-1]:
                raise ValueError(f"new keys {tuple(k.shape)} do not continue the cached {tuple(self.keys.shape)} "
                                 f"(batch and width must match)")
            k = torch.cat([self.keys, k], dim=-2)      # (B, S, C) ++ (B, t, C) -> (B, S + t, C)
            v = torch.cat([self.values, v], dim=-2)
        self.keys, self.values = k, v
        return k, v


class KVCache:
    """Per layer, the keys and values of every position seen so far (Pope et al. 2022 on the cache at
    scale). ``model(new_ids, past_kv=cache)`` appends to it and runs only the new tokens."""

    def __init__(self):
        self.layers: list[LayerKV] = []

    def layer(self, i: int) -> LayerKV:
        """Layer i's cache (made on first use)."""
        while len(self.layers) <= i:
            self.layers.append(LayerKV())
        return self.layers[i]

    @property
    def length(self) -> int:
        """Positions cached so far (those of the first layer; every layer holds as many)."""
        return self.layers[0].length if self.layers else 0

    @property
    def keys(self) -> list[torch.Tensor | None]:
        return [layer.keys for layer in self.layers]

    @property
    def values(self) -> list[torch.Tensor | None]:
        return [layer.values for layer in self.layers]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add k, v (B, t, C) to ``layer``; return all of that layer's (B, S + t, C)."""
        return self.layer(layer).extend(k, v)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)


def _check_model(model: nn.Module) -> None:
    cfg = getattr(model, "cfg", None)
    if not isinstance(model, nn.Module) or not hasattr(cfg, "block_size") or not hasattr(model, "blocks"):
        raise TypeError(f"expected a TinyGPT (a cfg with block_size, blocks that take past_kv); "
                        f"got {type(model).__name__}")


def gpt_forward(model: nn.Module, idx: torch.Tensor, attention_fn: AttentionFn | None = None, *,
                cache: KVCache | None = None) -> torch.Tensor:
    """Logits (B, T, V) of a TinyGPT for token ids idx (B, T): ``model(idx, past_kv=cache,
    attention_fn=attention_fn)``. ``attention_fn(q, k, v)`` replaces each layer's kernel (None: the
    model's backend). With a ``cache``, idx holds only the new tokens: their positions continue after
    the cached ones, and their keys and values are appended to it."""
    _check_model(model)
    return model(idx, past_kv=cache, attention_fn=attention_fn)


@torch.no_grad()
def generate_greedy(model: nn.Module, idx: torch.Tensor, n_new: int, *, use_cache: bool = True,
                    attention_fn: AttentionFn | None = None) -> torch.Tensor:
    """Append ``n_new`` argmax tokens to idx (B, T0). Without the cache every step re-runs the whole
    sequence; with it, the prompt runs once and each step runs one token. Same tokens either way.
    Put the model in ``eval()`` mode first if it has dropout."""
    _check_model(model)
    if n_new < 0:
        raise ValueError(f"n_new must be ≥ 0, got {n_new}")
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must have shape (B, T0) with T0 ≥ 1, got {tuple(idx.shape)}")
    if idx.shape[1] + n_new > model.cfg.block_size:
        raise ValueError(f"prompt length {idx.shape[1]} + n_new {n_new} exceeds block_size "
                         f"{model.cfg.block_size}; generate less or use a longer model")
    cache = KVCache() if use_cache else None
    new_tokens = idx
    for _ in range(n_new):
        logits = model(new_tokens if use_cache else idx, past_kv=cache, attention_fn=attention_fn)  # (B, t, V)
        nxt = logits[:, -1].argmax(dim=-1, keepdim=True)      # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)                    # (B, T + 1)
        new_tokens = nxt
    return idx


def kv_cache_bytes(n_layers: int, kv_heads: int, head_width: int, length: int, batch: int = 1,
                   bytes_per_number: int = 2) -> int:
    """2 (K and V) · L · G · Dh · T · B numbers: what a cache holds (G = H for MHA, 1 for MQA)."""
    return 2 * n_layers * kv_heads * head_width * length * batch * bytes_per_number


__all__ = ["KVCache", "LayerKV", "causal_sdpa", "generate_greedy", "gpt_forward", "kv_cache_bytes"]
