"""Cross-attention (``MultiHeadAttention(..., kv=)``), ``DecoderBlock`` and the transformer
encoder–decoder: queries from one sequence, keys and values from another, in every backend."""

import pytest
import torch

from attnflex_lab import functional
from attnflex_lab.models.encoder_decoder import EncoderDecoderConfig, TransformerSeq2Seq
from attnflex_lab.modules import BACKENDS, MultiHeadAttention, padding_mask, run_with_cache

B, T, S, C, H = 2, 3, 5, 8, 2
F64 = torch.float64


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, kv = torch.randn(B, T, C, generator=gen, dtype=F64), torch.randn(B, S, C, generator=gen, dtype=F64)
    return x, kv, padding_mask(torch.tensor([5, 2]), S)          # (B, T, C), (B, S, C), (B, 1, 1, S)


def _by_hand(mha, x, kv, mask):
    """q from x with W_Q's rows, k and v from kv with W_K's and W_V's; heads split and merged by hand."""
    w, b = mha.qkv.weight, mha.qkv.bias
    q, k, v = x @ w[:C].T + b[:C], kv @ w[C:2 * C].T + b[C:2 * C], kv @ w[2 * C:].T + b[2 * C:]
    heads = []
    for h in range(H):
        cols = slice(h * C // H, (h + 1) * C // H)
        out, _ = functional.attention(q[..., cols], k[..., cols], v[..., cols], mask=mask[:, 0])
        heads.append(out)                                          # (B, T, Dh)
    return torch.cat(heads, dim=-1) @ mha.proj.weight.T + mha.proj.bias


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_attention_matches_the_formula_in_every_backend(backend):
    torch.manual_seed(0)
    mha = MultiHeadAttention(C, H, backend=backend).double()
    x, kv, mask = _inputs()
    out, cache = run_with_cache(mha, x, mask, kv=kv)
    assert out.shape == (B, T, C) and cache["hook_pattern"].shape == (B, H, T, S)
    torch.testing.assert_close(out, _by_hand(mha, x, kv, mask))
    assert (cache["hook_pattern"][1, :, :, 2:] == 0).all()        # padded keys get no weight


def test_cross_attention_gradients_agree_across_backends():
    torch.manual_seed(0)
    mha = MultiHeadAttention(C, H).double()
    x0, kv0, mask = _inputs(1)
    upstream = torch.randn(B, T, C, dtype=F64)                      # every output entry matters
    grads = {}
    for backend in BACKENDS:
        mha.backend = backend
        mha.zero_grad()
        x, kv = x0.clone().requires_grad_(), kv0.clone().requires_grad_()
        (mha(x, mask, kv=kv) * upstream).sum().backward()
        grads[backend] = (x.grad, kv.grad, mha.qkv.weight.grad.clone())
    for backend in ("ops", "sdpa"):
        for got, ref in zip(grads[backend], grads["functional"], strict=True):
            torch.testing.assert_close(got, ref)
    assert grads["functional"][1][1, 2:].abs().max() == 0          # padded source positions get no gradient


def test_cross_attention_rejects_a_bad_kv():
    mha = MultiHeadAttention(C, H)
    with pytest.raises(ValueError, match="kv must have shape"):
        mha(torch.randn(B, T, C), kv=torch.randn(B, S, C + 1))


def _model(seed=0):
    torch.manual_seed(seed)
    return TransformerSeq2Seq(EncoderDecoderConfig(src_vocab=9, tgt_vocab=7, max_src_len=8, max_tgt_len=5,
                                                   d_model=16, n_heads=2, backend="functional")).eval()


def test_decoder_is_causal_and_source_padding_is_ignored():
    model = _model()
    src = torch.tensor([[3, 4, 5, 0, 0, 0], [6, 7, 8, 2, 3, 0]])   # (B, S), 0 = padding
    tgt = torch.tensor([[2, 3, 4, 5, 6], [6, 5, 4, 3, 2]])          # (B, T)
    with torch.no_grad():
        logits = model(src, tgt)                                    # (B, T, V)
        edited = tgt.clone()
        edited[:, 2] = 1
        changed = model(src, edited)
        padded_more = model(torch.cat([src, torch.zeros(2, 2, dtype=torch.long)], dim=1), tgt)
    assert logits.shape == (2, 5, 7)
    torch.testing.assert_close(changed[:, :3], logits[:, :3])       # step t reads targets < t only
    assert not torch.allclose(changed[:, 3:], logits[:, 3:])
    torch.testing.assert_close(padded_more, logits)                 # more padding, same answer


def test_generate_is_greedy_and_returns_every_cross_attention_map():
    model = _model(1)
    src = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 2]])
    tokens, maps = model.generate(src)
    assert tokens.shape == (2, 5) and maps.shape == (2, 2, 2, 5, 4)   # (B, L, H, T, S)
    with torch.no_grad():
        torch.testing.assert_close(model(src, tokens).argmax(-1), tokens)  # its own output, teacher-forced
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 2, 5))
    assert (maps[0, ..., 3] == 0).all()                               # the padded key
