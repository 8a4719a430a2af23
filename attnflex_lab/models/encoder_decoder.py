"""A transformer encoder–decoder (Vaswani et al. 2017) at teaching size, for the dates task.

Dimension legend: B batch, S source positions, T target positions, C model width, L layers, H heads.
The encoder is a stack of pre-LN ``TransformerBlock``s over the source (padding masked); the decoder
is a stack of ``DecoderBlock``s: causal self-attention over the target so far, then **cross**-
attention whose queries come from the target and whose keys and values are the encoder's output.
Its cross-attention maps (hook "dec_blocks.{ℓ}.cross_attn.hook_pattern", (B, H, T, S)) are the
transformer's counterpart of Bahdanau's alignment α (B, T, S).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..modules import DecoderBlock, TransformerBlock, positional_encoding, run_with_cache
from .transformer import init_gpt2


@dataclass
class EncoderDecoderConfig:
    src_vocab: int = 68           # source characters (+ padding, id 0)
    tgt_vocab: int = 13           # target characters (+ padding and BOS)
    bos_id: int = 1               # the token the decoder starts from
    pad_id: int = 0               # source padding: never attended to
    max_src_len: int = 64         # longest source the positions cover
    max_tgt_len: int = 10         # "YYYY-MM-DD"
    d_model: int = 64             # C: residual stream width
    n_heads: int = 4              # H: heads per attention layer
    n_enc_layers: int = 2         # encoder blocks
    n_dec_layers: int = 2         # decoder blocks
    backend: str = "sdpa"         # attention backend: "sdpa", "functional" or "ops"


class TransformerSeq2Seq(nn.Module):
    """Source ids (B, S) and target ids (B, T) -> next-character logits (B, T, V) by teacher forcing."""

    def __init__(self, cfg: EncoderDecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.src_emb = nn.Embedding(cfg.src_vocab, cfg.d_model)
        self.src_pos = positional_encoding("learned", cfg.d_model, cfg.max_src_len)
        self.enc_blocks = nn.ModuleList(TransformerBlock(cfg.d_model, cfg.n_heads, backend=cfg.backend)
                                        for _ in range(cfg.n_enc_layers))
        self.ln_enc = nn.LayerNorm(cfg.d_model)
        self.tgt_emb = nn.Embedding(cfg.tgt_vocab, cfg.d_model)
        self.tgt_pos = positional_encoding("learned", cfg.d_model, cfg.max_tgt_len)
        self.dec_blocks = nn.ModuleList(DecoderBlock(cfg.d_model, cfg.n_heads, backend=cfg.backend)
                                        for _ in range(cfg.n_dec_layers))
        self.ln_dec = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.tgt_vocab)
        init_gpt2(self, self.enc_blocks)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) -> memory (B, S, C) and its key mask (B, 1, 1, S), True = a real character."""
        if src.dim() != 2 or src.shape[1] > self.cfg.max_src_len:
            raise ValueError(f"src must have shape (B, S ≤ {self.cfg.max_src_len}), got {tuple(src.shape)}")
        keep = (src != self.cfg.pad_id)[:, None, None, :]     # (B, 1, 1, S)
        x = self.src_pos(self.src_emb(src))                    # (B, S) -> (B, S, C)
        for block in self.enc_blocks:
            x = block(x, keep)                                 # (B, S, C)
        return self.ln_enc(x), keep

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """tgt_in (B, T) starting with BOS -> logits (B, T, V) for the next character at each step."""
        y = self.tgt_pos(self.tgt_emb(tgt_in))                 # (B, T) -> (B, T, C)
        for block in self.dec_blocks:
            y = block(y, memory, keep)                         # (B, T, C)
        return self.head(self.ln_dec(y))                       # (B, T, V)

    def shift_right(self, tgt: torch.Tensor) -> torch.Tensor:
        """(B, T) targets -> (B, T) decoder inputs: BOS, then the targets without the last."""
        bos = torch.full_like(tgt[:, :1], self.cfg.bos_id)    # (B, 1)
        return torch.cat([bos, tgt[:, :-1]], dim=1)            # (B, T)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        memory, keep = self.encode(src)
        return self.decode(self.shift_right(tgt), memory, keep)  # (B, T, V)

    @torch.no_grad()
    def generate(self, src: torch.Tensor, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding: tokens (B, T) and every cross-attention map (B, L, H, T, S)."""
        steps = self.cfg.max_tgt_len if max_len is None else max_len
        memory, keep = self.encode(src)
        tokens = torch.full((src.shape[0], 1), self.cfg.bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        for _ in range(steps):  # re-run the decoder on the prefix: simple, and T is 10
            nxt = self.decode(tokens, memory, keep)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            tokens = torch.cat([tokens, nxt], dim=1)                                 # (B, t + 1)
        _, cache = run_with_cache(self, src, tokens[:, 1:], names="cross_attn.hook_pattern")
        maps = torch.stack(list(cache.values()), dim=1)                              # (B, L, H, T, S)
        return tokens[:, 1:], maps
