"""Run a ``TinyGPT``'s weights with a pluggable attention kernel, and generate with a KV cache.

``gpt_forward(model, idx, attention_fn)`` walks the model's own modules (tok_emb, pos, blocks with
ln1, attn.qkv, attn.proj, ln2, mlp, then ln_f and lm_head) and lets you choose how attention is
computed, so the same weights can be trained or evaluated with full, sliding-window or linear
attention. ``generate_greedy`` appends the argmax token n times, either re-running the whole
context every step (O(T) work per token) or keeping each layer's keys and values in a ``KVCache``
so every step runs only the new token (Pope et al. 2022 on the cache at scale).

Dimension legend (lesson 00's table): B batch, T positions, C width, H heads, D head width (``Dh``
in the code, which keeps D free), L layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention (bottom-right aligned, so a T = 1 query sees every cached key)."""
    if q.shape[-2] == 1:
        return F.scaled_dot_product_attention(q, k, v)  # one new query: every key is in its past
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal_sdpa takes T = S or T = 1, got q {tuple(q.shape)}, k {tuple(k.shape)}")
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _check_model(model: nn.Module) -> None:
    needed = ("tok_emb", "pos", "blocks", "ln_f", "lm_head", "cfg")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing or not hasattr(model.pos, "weight"):
        raise TypeError(f"expected a TinyGPT (learned positions, blocks of ln1/attn/ln2/mlp); "
                        f"{type(model).__name__} lacks {missing or ['pos.weight']}")


@dataclass
class KVCache:
    """Per layer, the keys and values of every position seen so far: 2 tensors (B, H, T, Dh)."""

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.keys or self.keys[0] is None else self.keys[0].shape[-2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add this step's k, v (B, H, t, Dh) for ``layer``; return all of them (B, H, T_so_far, Dh)."""
        while len(self.keys) <= layer:
            self.keys.append(None)
            self.values.append(None)
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=-2)   # (B, H, T, Dh) + (B, H, t, Dh)
            v = torch.cat([self.values[layer], v], dim=-2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)


def gpt_forward(model: nn.Module, idx: torch.Tensor, attention_fn: AttentionFn = causal_sdpa, *,
                cache: KVCache | None = None) -> torch.Tensor:
    """Logits (B, T, V) of a TinyGPT for token ids idx (B, T), with ``attention_fn(q, k, v)``.

    With a ``cache``, idx holds only the new tokens: their positions continue after the cached ones,
    and their keys and values are appended to it.
    """
    _check_model(model)
    start = 0 if cache is None else cache.length
    B, T = idx.shape
    if start + T > model.cfg.block_size:
        raise ValueError(f"positions {start}..{start + T - 1} exceed the model's block_size "
                         f"{model.cfg.block_size}")
    x = model.drop(model.tok_emb(idx) + model.pos.weight[start:start + T])   # (B, T, C)
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        H, Dh = attn.n_heads, attn.d_head
        q, k, v = attn.qkv(block.ln1(x)).split(H * Dh, dim=-1)               # 3 × (B, T, C)
        q, k, v = (t.view(B, T, H, Dh).transpose(1, 2) for t in (q, k, v))   # -> (B, H, T, Dh)
        if cache is not None:
            k, v = cache.append(layer, k, v)                                  # (B, H, start + T, Dh)
        out = attention_fn(q, k, v).transpose(1, 2).reshape(B, T, H * Dh)    # (B, H, T, Dh) -> (B, T, C)
        x = x + block.dropout(attn.proj(out))
        x = x + block.mlp(block.ln2(x))                                       # (B, T, C)
    return model.lm_head(model.ln_f(x))                                       # (B, T, V)


@torch.no_grad()
def generate_greedy(model: nn.Module, idx: torch.Tensor, n_new: int, *, use_cache: bool = True,
                    attention_fn: AttentionFn = causal_sdpa) -> torch.Tensor:
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
        logits = gpt_forward(model, new_tokens if use_cache else idx, attention_fn, cache=cache)
        nxt = logits[:, -1].argmax(dim=-1, keepdim=True)      # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)                    # (B, T + 1)
        new_tokens = nxt
    return idx


def kv_cache_bytes(n_layers: int, kv_heads: int, head_width: int, length: int, batch: int = 1,
                   bytes_per_number: int = 2) -> int:
    """2 (K and V) · L · G · Dh · T · B numbers: what a cache holds (G = H for MHA, 1 for MQA)."""
    return 2 * n_layers * kv_heads * head_width * length * batch * bytes_per_number


__all__ = ["KVCache", "causal_sdpa", "generate_greedy", "gpt_forward", "kv_cache_bytes"]
