"""efficient.py and kv_cache.py: sliding windows, linear attention, grouped-query attention, KV cache.

Planted bugs these tests catch: an off-by-one window (j ≥ i' − window instead of >), the band's keys
read without the S − T offset, linear attention's chunk state updated before it is read (a query
sees its own chunk twice), a cache that forgets the position offset (cached tokens differ), and GQA
pairing query head h with K/V head h % G instead of h // (H / G).
"""

import pytest
import torch

from attnflex_lab import functional
from attnflex_lab.kernels import efficient, kv_cache
from attnflex_lab.models.transformer import GPTConfig, TinyGPT
from attnflex_lab.modules import causal_mask

F64 = torch.float64


def _qkv(lead, T, S, D=4, Dv=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*lead, T, D, generator=gen, dtype=F64), torch.randn(*lead, S, D, generator=gen, dtype=F64),
            torch.randn(*lead, S, Dv, generator=gen, dtype=F64))


# --- sliding window ------------------------------------------------------------------------------

def test_sliding_window_mask_counts():
    mask = efficient.sliding_window_mask(6, window=3)
    assert mask.sum(-1).tolist() == [1, 2, 3, 3, 3, 3]           # each query sees ≤ window keys
    assert torch.equal(efficient.sliding_window_mask(5, 7, window=7), causal_mask(5, 7))
    assert torch.equal(mask & ~causal_mask(6), torch.zeros(6, 6, dtype=torch.bool))  # never the future


@pytest.mark.parametrize("T,S", [(17, 17), (9, 15), (15, 9)])
@pytest.mark.parametrize("window,block", [(1, 4), (4, 3), (5, 5), (30, 8)])
def test_banded_equals_masked(T, S, window, block):
    q, k, v = _qkv((2, 2), T, S)
    grad_out = torch.randn(2, 2, T, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    leaves_a = [t.clone().requires_grad_() for t in (q, k, v)]
    leaves_b = [t.clone().requires_grad_() for t in (q, k, v)]
    banded = efficient.sliding_window_attention(*leaves_a, window=window, block=block)
    masked, _ = functional.attention(*leaves_b, efficient.sliding_window_mask(T, S, window=window))
    torch.testing.assert_close(banded, masked, atol=1e-12, rtol=0)
    for a, b in zip(torch.autograd.grad(banded, leaves_a, grad_out),
                    torch.autograd.grad(masked, leaves_b, grad_out), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_banded_reads_a_band_not_the_square(monkeypatch):
    q, k, v = _qkv((1,), 64, 64)
    seen = []
    original = efficient.masked_softmax
    monkeypatch.setattr(efficient, "masked_softmax", lambda s, m: seen.append(s.shape[-1]) or original(s, m))
    efficient.sliding_window_attention(q, k, v, window=8)
    assert max(seen) <= 8 + 8 - 1 and len(seen) == 8


# --- linear attention ----------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 7, 64])
def test_linear_attention_chunked_equals_quadratic(causal, chunk):
    q, k, v = _qkv((2, 3), 13, 13)
    torch.testing.assert_close(efficient.linear_attention(q, k, v, causal=causal, chunk=chunk),
                               efficient.linear_attention_quadratic(q, k, v, causal=causal),
                               atol=1e-12, rtol=0)


def test_linear_attention_is_a_weighted_average():
    q, k, _ = _qkv((2,), 6, 6)
    v = torch.full((2, 6, 3), 2.5, dtype=F64)               # equal values: any average returns them
    out = efficient.linear_attention(q, k, v, causal=True, chunk=4)
    torch.testing.assert_close(out, torch.full_like(out, 2.5), atol=1e-6, rtol=0)
    q, k, v = _qkv((2,), 6, 9)
    with pytest.raises(ValueError, match="T = S"):
        efficient.linear_attention(q, k, v, causal=True)


# --- grouped-query attention ---------------------------------------------------------------------

@pytest.mark.parametrize("groups", [1, 2, 4])
def test_grouped_query_matches_repeated_heads(groups):
    q, _, _ = _qkv((2, 4), 5, 5)
    _, k, v = _qkv((2, groups), 5, 7, seed=1)
    mask = causal_mask(5, 7)
    out = efficient.grouped_query_attention(q, k, v, mask)
    repeat = 4 // groups                                     # query head h uses K/V head h // repeat
    ref, _ = functional.attention(q, k.repeat_interleave(repeat, 1), v.repeat_interleave(repeat, 1), mask)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_grouped_query_rejects_groups_that_do_not_divide():
    q, _, _ = _qkv((2, 4), 5, 5)
    _, k, v = _qkv((2, 3), 5, 5)
    with pytest.raises(ValueError, match=r"G dividing H.*\(2, 4, 5, 4\).*\(2, 3, 5, 4\)"):
        efficient.grouped_query_attention(q, k, v)


# --- KV cache ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return TinyGPT(GPTConfig(vocab_size=11, block_size=40, n_layers=2, n_heads=2, d_model=16)).double().eval()


def test_gpt_forward_equals_the_model(gpt):
    idx = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(kv_cache.gpt_forward(gpt, idx), gpt(idx), atol=1e-12, rtol=0)


def test_cached_generation_gives_the_same_tokens(gpt):
    idx = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(3))
    uncached = kv_cache.generate_greedy(gpt, idx, 30, use_cache=False)
    cached = kv_cache.generate_greedy(gpt, idx, 30, use_cache=True)
    assert cached.shape == (2, 35) and torch.equal(cached, uncached)
    cache = kv_cache.KVCache()
    kv_cache.gpt_forward(gpt, idx, cache=cache)
    assert cache.length == 5 and len(cache.keys) == 2
    assert cache.nbytes() == kv_cache.kv_cache_bytes(2, 2, 8, 5, batch=2, bytes_per_number=8)


def test_generation_checks_its_length(gpt):
    idx = torch.zeros(1, 30, dtype=torch.long)
    with pytest.raises(ValueError, match="block_size 40"):
        kv_cache.generate_greedy(gpt, idx, 11)
    with pytest.raises(TypeError, match="TinyGPT"):
        kv_cache.gpt_forward(torch.nn.Linear(2, 2), idx)
