"""An encoder–decoder with additive attention (Bahdanau, Cho & Bengio, 2015), in lesson 00's notation.

    encoder:  h_j = [→GRU(x_≤j) ; ←GRU(x_≥j)]                       h (B, S, 2·D_e)
    score:    z_tj = v_aᵀ tanh(W_q u_{t-1} + W_k h_j)                 z (B, S)   for each step t
    weights:  α_tj = softmax_j(z_tj) over real (unpadded) positions   α (B, S)
    context:  c_t = Σ_j α_tj h_j                                       c (B, 2·D_e)
    decoder:  u_t = GRUCell([emb(y_{t-1}); c_t], u_{t-1})              u (B, D_u)
    output:   p(y_t) = softmax(W_o [u_t; c_t; emb(y_{t-1})])

(The paper writes the scores e_tj and the decoder state s_{t-1}; D_e is the encoder's width per
direction, ``Seq2SeqConfig.hidden``, and D_u the decoder state's width.)

Training feeds the true previous token (teacher forcing); ``generate`` feeds back its own argmax
(greedy) and returns the attention map, one row of α per output character.

With ``Seq2SeqConfig(attention=False)`` the same network loses its attention (Cho et al., 2014;
Sutskever et al., 2014): the context is fixed, c_t = [→h_last ; ←h_first], the last state of each
encoder direction, so the whole input must squeeze through one (B, 2·D_e) vector, the *bottleneck*
that Bahdanau et al. removed. α is then all zeros (nothing is attended).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._validate import check_mask, check_tensor
from ..functional import masked_softmax


@dataclass
class Seq2SeqConfig:
    src_vocab: int               # source characters, id 0 = padding
    tgt_vocab: int               # target characters
    bos_id: int = 1              # target id fed as y_0
    pad_id: int = 0              # source padding id
    embed: int = 32              # character embedding width
    hidden: int = 64             # encoder GRU width per direction (D_e); h_j has 2·D_e
    dec_hidden: int = 128        # decoder GRU width
    attn: int = 64               # additive attention width A
    max_len: int = 10            # output length for greedy decoding ("YYYY-MM-DD")
    attention: bool = True       # False: c_t = the last encoder state at every step (no attention)


class AdditiveAttention(nn.Module):
    """α = softmax_j(v_aᵀ tanh(W_q s + W_k h_j)) over unmasked j; keys projected once per input."""

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.w_q = nn.Linear(query_dim, attn_dim, bias=False)
        self.w_k = nn.Linear(key_dim, attn_dim, bias=True)
        self.v_a = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.w_k(keys)                             # (B, S, 2·D_e) -> (B, S, A)

    def forward(self, query: torch.Tensor, projected_keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, Dq), projected_keys (B, S, A) from ``project_keys``, values (B, S, Dv), mask
        (B, S) True = a real position. Returns context (B, Dv) and α (B, S)."""
        self._check_inputs(query, projected_keys, values, mask)
        q = self.w_q(query).unsqueeze(1)                  # (B, Dq) -> (B, 1, A)
        scores = self.v_a(torch.tanh(q + projected_keys)).squeeze(-1)  # (B, S, A) -> (B, S)
        alpha = masked_softmax(scores, mask)              # (B, S), 0 on padding
        context = (alpha.unsqueeze(1) @ values).squeeze(1)  # (B, 1, S) @ (B, S, 2·D_e) -> (B, 2·D_e)
        return context, alpha

    def _check_inputs(self, query, projected_keys, values, mask) -> None:
        # shapes only: under autocast the dtypes may legitimately differ (bf16 keys, fp32 state)
        for name, x in (("query", query), ("projected_keys", projected_keys), ("values", values)):
            check_tensor(name, x)
        dq, a = self.w_q.in_features, self.w_q.out_features
        if (query.dim() != 2 or query.shape[1] != dq or projected_keys.dim() != 3
                or projected_keys.shape[0] != query.shape[0] or projected_keys.shape[2] != a
                or values.dim() != 3 or values.shape[:2] != projected_keys.shape[:2]):
            raise ValueError(f"additive attention needs query (B, Dq={dq}), projected_keys "
                             f"(B, S, A={a}) from project_keys, and values (B, S, Dv); got query "
                             f"{tuple(query.shape)}, projected_keys {tuple(projected_keys.shape)}, "
                             f"values {tuple(values.shape)}")
        check_mask(mask, projected_keys.shape[:2], query.device, what="attention scores (B, S)")


class Seq2SeqAttention(nn.Module):
    """Bidirectional GRU encoder + additive-attention GRU decoder.

    ``forward(src, tgt)`` (teacher forcing) returns ``(logits (B, T, V), alpha (B, T, S))``;
    ``generate(src)`` (greedy) returns ``(tokens (B, T), alpha (B, T, S))``.
    """

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embed = nn.Embedding(cfg.src_vocab, cfg.embed, padding_idx=cfg.pad_id)
        self.encoder = nn.GRU(cfg.embed, cfg.hidden, batch_first=True, bidirectional=True)
        self.init_state = nn.Linear(2 * cfg.hidden, cfg.dec_hidden)
        self.attention = AdditiveAttention(cfg.dec_hidden, 2 * cfg.hidden, cfg.attn)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab, cfg.embed)
        self.decoder = nn.GRUCell(cfg.embed + 2 * cfg.hidden, cfg.dec_hidden)
        self.out = nn.Linear(cfg.dec_hidden + 2 * cfg.hidden + cfg.embed, cfg.tgt_vocab)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B, S) ids -> (states h (B, S, 2·D_e), mask (B, S), first decoder state (B, D_u))."""
        if src.dim() != 2 or src.dtype != torch.int64:
            raise ValueError(f"src must be int64 ids of shape (B, S), got {src.dtype} "
                             f"{tuple(src.shape)}")
        mask = src != self.cfg.pad_id                     # (B, S) True = a real character
        lengths = mask.sum(1)                             # (B,)
        if (lengths == 0).any():
            raise ValueError("every source needs at least one character; some rows are all "
                             "padding")
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        out, last = self.encoder(packed)  # last (2, B, H): forward end, backward start
        h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        summary = torch.cat([last[0], last[1]], dim=-1)   # (B, 2·D_e)
        return h, mask, torch.tanh(self.init_state(summary))  # (B, S, 2·D_e), (B, S), (B, D_u)

    def _decode(self, src: torch.Tensor, tgt: torch.Tensor | None, steps: int):
        h, mask, state = self.encode(src)
        if self.cfg.attention:
            keys = self.attention.project_keys(h)         # (B, S, A)
        else:                        # the bottleneck: one vector for the input
            last = mask.sum(1) - 1                        # (B,) index of the last real character
            H = self.cfg.hidden
            fixed = torch.cat([h[torch.arange(h.shape[0]), last, :H], h[:, 0, H:]], -1)  # (B, 2·D_e)
            no_alpha = torch.zeros_like(mask, dtype=h.dtype)                            # (B, S)
        prev = torch.full((src.shape[0],), self.cfg.bos_id, dtype=torch.int64, device=src.device)
        logits, alphas, tokens = [], [], []
        for t in range(steps):
            emb = self.tgt_embed(prev)                    # (B, E)
            if self.cfg.attention:
                context, alpha = self.attention(state, keys, h, mask)  # (B, 2·D_e), (B, S)
            else:
                context, alpha = fixed, no_alpha
            state = self.decoder(torch.cat([emb, context], -1), state)  # (B, E + 2·D_e) -> (B, D_u)
            step_logits = self.out(torch.cat([state, context, emb], -1))  # (B, V)
            logits.append(step_logits)
            alphas.append(alpha)
            tokens.append(step_logits.argmax(-1))         # (B,)
            prev = tgt[:, t] if tgt is not None else tokens[-1]
        # (B, V) x T -> (B, T, V); (B, S) x T -> (B, T, S); (B,) x T -> (B, T)
        return torch.stack(logits, 1), torch.stack(alphas, 1), torch.stack(tokens, 1)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing (step t sees the true y_{t-1}): logits (B, T, V), α (B, T, S)."""
        if tgt.dim() != 2 or tgt.shape[0] != src.shape[0] or tgt.dtype != torch.int64:
            raise ValueError(f"tgt must be int64 ids of shape (B, T) with B = {src.shape[0]}, "
                             f"got {tgt.dtype} {tuple(tgt.shape)}")
        logits, alpha, _ = self._decode(src, tgt, tgt.shape[1])
        return logits, alpha

    @torch.no_grad()
    def generate(self, src: torch.Tensor, max_len: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding: tokens (B, T) and the attention map α (B, T, S)."""
        steps = self.cfg.max_len if max_len is None else max_len
        if not isinstance(steps, int) or steps <= 0:
            raise ValueError(f"max_len must be a positive int (output characters), got {max_len!r}")
        _, alpha, tokens = self._decode(src, None, steps)
        return tokens, alpha
