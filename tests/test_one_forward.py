"""One attention forward (issue 19 §3): the KV cache lives in MultiHeadAttention / TransformerBlock /
TinyGPT, so cached generation is the model's own forward, with a prefix, adapters, any backend.

Planted bugs these tests caught (each tried, seen failing, reverted): the cache storing keys after
the prefix (the prefix then repeats once per step); the positions of new tokens not offset by the
cache length; the causal mask aligned top-left (a new query sees only the first cached key); the
old hand-copied ``kv_cache.gpt_forward``, which ignored ``kv_prefix`` and broke on adapters.
"""

import pytest
import torch

from attnflex_lab.adapt import AdapterConfig, PrefixConfig, add_adapters, add_prefix
from attnflex_lab.kernels import kv_cache
from attnflex_lab.models.transformer import GPTConfig, TinyGPT
from attnflex_lab.modules import MultiHeadAttention, run_with_cache

VOCAB = 11
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest


def _gpt(variant: str, backend: str) -> TinyGPT:
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(vocab_size=VOCAB, block_size=24, n_layers=2, n_heads=2, d_model=16,
                              dropout=0.3, backend=backend)).double()
    if variant == "prefix":
        add_prefix(model, PrefixConfig(length=3, init_std=1.0))    # large: the prefix must matter
    elif variant == "adapters":
        for adapter in add_adapters(model, AdapterConfig(size=4)):
            torch.nn.init.normal_(adapter.up.weight, std=0.5)       # not the identity they start as
    return model.eval()                                             # dropout off: same answer every call


@pytest.mark.parametrize("backend", ["functional", "ops", "sdpa"])
@pytest.mark.parametrize("variant", ["plain", "prefix", "adapters"])
def test_cached_decoding_is_the_full_forward(variant, backend):
    model = _gpt(variant, backend)
    idx = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))   # (B, T)
    full = model(idx)                                                                    # (B, T, V)
    cache = kv_cache.KVCache()
    steps = [model(idx[:, :5], past_kv=cache)]                        # the prompt in one go
    steps += [model(idx[:, t:t + 1], past_kv=cache) for t in range(5, 12)]  # then one token at a time
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-10)
    prompt = idx[:, :4]
    cached = kv_cache.generate_greedy(model, prompt, 16, use_cache=True)
    uncached = kv_cache.generate_greedy(model, prompt, 16, use_cache=False)
    assert torch.equal(cached, uncached)


def test_the_variants_really_change_the_model():
    """Otherwise the test above would compare three copies of the plain model."""
    idx = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(2))
    plain = _gpt("plain", "sdpa")(idx)
    for variant in ("prefix", "adapters"):
        assert (_gpt(variant, "sdpa")(idx) - plain).abs().max() > 0.05, variant


def test_a_swapped_kernel_runs_on_the_same_weights_with_a_prefix_and_a_cache():
    """``gpt_forward(model, idx, attention_fn)`` is the model's forward with another kernel: with
    ``causal_sdpa`` it equals the model, prefix included (the old copy ignored the prefix, 0.085 off),
    and the kernel sees one query per cached step."""
    model = _gpt("prefix", "functional")
    idx = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(kv_cache.gpt_forward(model, idx, kv_cache.causal_sdpa), model(idx),
                               rtol=0, atol=1e-10)
    rows = []

    def counting(q, k, v):
        rows.append((q.shape[-2], k.shape[-2]))
        return kv_cache.causal_sdpa(q, k, v)

    kv_cache.generate_greedy(model, idx[:, :4], 3, attention_fn=counting)
    # 2 layers; the prompt (4 queries over 3 prefix + 4 keys), then one query over the growing cache
    assert rows == [(4, 7), (4, 7), (1, 8), (1, 8), (1, 9), (1, 9)]


def test_hook_points_see_the_cached_step():
    model = _gpt("plain", "sdpa")
    cache = kv_cache.KVCache()
    model(torch.zeros(1, 5, dtype=torch.long), past_kv=cache)
    _, acts = run_with_cache(model, torch.zeros(1, 1, dtype=torch.long), past_kv=cache)
    assert acts["blocks.0.attn.hook_z"].shape == (1, 2, 1, 8)              # (B, H, T, Dh): the new token
    assert acts["blocks.1.hook_resid_post"].shape == (1, 1, 16)


def test_bad_cache_use_is_refused_with_the_shapes():
    model = _gpt("plain", "sdpa")
    cache = kv_cache.KVCache()
    model(torch.zeros(2, 20, dtype=torch.long), past_kv=cache)
    with pytest.raises(ValueError, match=r"positions 20..24 exceed the model's block_size 24"):
        model(torch.zeros(2, 5, dtype=torch.long), past_kv=cache)
    with pytest.raises(ValueError, match=r"do not continue the cached \(2, 20, 16\)"):
        model(torch.zeros(3, 1, dtype=torch.long), past_kv=cache)
    mha = MultiHeadAttention(16, 2)
    x = torch.randn(1, 3, 16)
    with pytest.raises(ValueError, match="cross-attention"):
        mha(x, kv=x, past_kv=kv_cache.LayerKV())
    with pytest.raises(ValueError, match="mask=None"):
        mha(x, torch.ones(3, 3, dtype=torch.bool), attention_fn=kv_cache.causal_sdpa)
