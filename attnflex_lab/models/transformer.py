"""Two small transformers: an encoder for sequence tasks and ``TinyGPT``, a char-level language model.

Dimension legend: B batch, T positions, C model width, V vocabulary, L layers, H heads.
Both are stacks of the pre-LN ``TransformerBlock`` from ``attnflex_lab.modules``; the encoder lets
every position see every other, TinyGPT lets position t see positions ≤ t only (causal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..modules import TransformerBlock, positional_encoding

if TYPE_CHECKING:
    from ..kernels.kv_cache import KVCache


def init_gpt2_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) for linear and embedding weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def scale_residual_projections(blocks: Sequence[nn.Module]) -> None:
    """GPT-2's scaled init of the layers that write into the residual stream.

    Each block adds two outputs to the stream (attention's ``proj``, the MLP's ``down``), so after
    L blocks 2L terms have been summed and the stream's variance grows with depth. Drawing those
    weights with std 0.02/√(2L) instead of 0.02 keeps it of the same size at any depth.
    """
    std = 0.02 / math.sqrt(2 * len(blocks))
    for block in blocks:
        for proj in (block.attn.proj, block.mlp.down):
            nn.init.normal_(proj.weight, mean=0.0, std=std)


def init_gpt2(model: nn.Module, blocks: Sequence[nn.Module]) -> None:
    """GPT-2's initialisation of a whole model: ``init_gpt2_weights`` everywhere, then the scaled
    residual projections of its transformer ``blocks``."""
    model.apply(init_gpt2_weights)
    scale_residual_projections(blocks)


def check_token_shape(idx: torch.Tensor, max_len: int) -> None:
    """dtype and shape of token ids: free (no device work), so every forward runs it."""
    if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.long, torch.int, torch.int16, torch.uint8):
        raise TypeError(f"token ids must be an integer tensor, got "
                        f"{getattr(idx, 'dtype', type(idx).__name__)}")
    if idx.dim() != 2:
        raise ValueError(f"token ids must have shape (B, T), got {tuple(idx.shape)}")
    if idx.shape[1] > max_len:
        raise ValueError(f"sequence length T={idx.shape[1]} exceeds the model's max_len={max_len}")


def check_token_range(idx: torch.Tensor, vocab_size: int) -> None:
    """Token ids must lie in 0..vocab_size-1. Reading min and max back waits for the device, so
    recipes run this once over their data rather than on every training batch."""
    if idx.numel() and (idx.min() < 0 or idx.max() >= vocab_size):
        raise ValueError(f"token ids must lie in 0..{vocab_size - 1}, got min {int(idx.min())} "
                         f"and max {int(idx.max())}")


_is_compiling = getattr(torch.compiler, "is_compiling", None) or (lambda: False)  # torch ≥ 2.3


def range_check_is_cheap(idx: torch.Tensor, training: bool) -> bool:
    """Check the ids' range inside forward where it costs nothing that matters: on the CPU (min and
    max wait for no device) or outside training (inference, generation). Never while torch.compile
    traces (a data-dependent branch breaks the graph) and never in a training step on an
    accelerator (two host syncs per step); there the recipe has checked its data once."""
    if _is_compiling():
        return False
    return idx.device.type == "cpu" or not training


@dataclass
class EncoderConfig:
    vocab_size: int = 12          # input tokens (digits 0-9 plus room for specials)
    n_classes: int = 12           # output classes per position
    max_len: int = 32             # longest sequence the positional encoding covers
    d_model: int = 64             # C: residual stream width
    n_heads: int = 4              # H: heads per layer (head width C / H)
    n_layers: int = 2             # L: transformer blocks
    dropout: float = 0.0          # small synthetic tasks do not overfit; keep the maps crisp
    pos_encoding: str = "learned"  # "learned", "sinusoidal" or "none" (a bag of tokens)
    backend: str = "sdpa"         # attention backend: "sdpa", "functional" or "ops"
    norm_first: bool = True       # pre-LN blocks; False = post-LN (Vaswani et al. 2017), lesson 09
    attn_dropout: float = 0.0     # dropout on the attention weights (lesson 09)


class SequenceEncoder(nn.Module):
    """Tokens (B, T) -> per-position logits (B, T, n_classes); for sort, reverse and copy."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = positional_encoding(cfg.pos_encoding, cfg.d_model, cfg.max_len)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.d_model, cfg.n_heads, dropout=cfg.dropout,
                                                     backend=cfg.backend, norm_first=cfg.norm_first,
                                                     attn_dropout=cfg.attn_dropout)
                                    for _ in range(cfg.n_layers))
        # a post-LN stack already ends in a LayerNorm; a second one would only add parameters
        self.ln_f = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)
        init_gpt2(self, self.blocks)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_token_shape(idx, self.cfg.max_len)
        if range_check_is_cheap(idx, self.training):
            check_token_range(idx, self.cfg.vocab_size)
        x = self.pos(self.embed(idx))        # (B, T) -> (B, T, C)
        for block in self.blocks:
            x = block(x, mask)               # (B, T, C)
        return self.head(self.ln_f(x))       # (B, T, C) -> (B, T, n_classes)


@dataclass
class GPTConfig:
    vocab_size: int = 65          # V: characters in the corpus
    block_size: int = 64          # T_max: context length
    n_layers: int = 2             # L: transformer blocks
    n_heads: int = 4              # H: heads per layer
    d_model: int = 128            # C: residual stream width
    dropout: float = 0.0          # raise it for long runs on small corpora
    bias: bool = True             # biases in Linear and LayerNorm (GPT-2 has them)
    backend: str = "sdpa"         # attention backend: "sdpa", "functional" or "ops"


class TinyGPT(nn.Module):
    """A GPT-style decoder (Radford et al. 2019) at teaching size: next-character prediction."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = positional_encoding("learned", cfg.d_model, cfg.block_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.d_model, cfg.n_heads, dropout=cfg.dropout,
                                                     backend=cfg.backend, bias=cfg.bias)
                                    for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        init_gpt2(self, self.blocks)
        # Weight tying (Press & Wolf 2017): the output layer reuses the input embedding matrix, so a
        # character's "read" and "write" vectors are the same and the model has V·C fewer weights.
        self.lm_head.weight = self.tok_emb.weight

    def forward(self, idx: torch.Tensor, *, past_kv: KVCache | None = None,
                attention_fn: Callable | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, V) for the next token at every position.

        ``past_kv`` (a ``kv_cache.KVCache``): idx holds only new tokens, at positions after the cached
        ones; their keys and values are added to the cache. ``attention_fn(q, k, v)`` replaces every
        layer's attention kernel (it must be causal itself, as ``kv_cache.causal_sdpa`` is).
        """
        check_token_shape(idx, self.cfg.block_size)
        if range_check_is_cheap(idx, self.training):
            check_token_range(idx, self.cfg.vocab_size)
        start = 0 if past_kv is None else past_kv.length
        if start + idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"positions {start}..{start + idx.shape[1] - 1} exceed the model's block_size "
                             f"{self.cfg.block_size}")
        x = self.drop(self.pos(self.tok_emb(idx), offset=start))  # (B, T) -> (B, T, C)
        for i, block in enumerate(self.blocks):
            layer_kv = None if past_kv is None else past_kv.layer(i)
            x = block(x, causal=True, past_kv=layer_kv, attention_fn=attention_fn)  # (B, T, C)
        return self.lm_head(self.ln_f(x))           # (B, T, C) @ (C, V) -> (B, T, V)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters counted once (tied weights once); ``non_embedding`` drops the position table."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.pos.weight.numel() if non_embedding else n

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, n_new: int, *, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``n_new`` sampled tokens to idx (B, T); the context is cropped to block_size.

        ``generator`` (for repeatable samples) must live on the model's device.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        for _ in range(n_new):
            context = idx[:, -self.cfg.block_size:]                   # (B, ≤T_max)
            logits = self(context)[:, -1, :] / temperature            # (B, V)
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)                         # (B, V)
            nxt = torch.multinomial(probs, 1, generator=generator)    # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)                        # (B, T + 1)
        return idx
