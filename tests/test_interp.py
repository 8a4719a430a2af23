"""interp.py: head ablation against zeroed output-projection columns, importance and pruning against
manual ablations, activation patching where the answer is known, uniform attention by hand."""

import pytest
import torch

from attnflex_lab.analysis import interp
from attnflex_lab.models.transformer import EncoderConfig, SequenceEncoder
from attnflex_lab.modules import MultiHeadAttention, run_with_cache


def _encoder(backend="sdpa", seed=0):
    torch.manual_seed(seed)
    cfg = EncoderConfig(vocab_size=10, n_classes=10, max_len=6, d_model=16, n_heads=4, n_layers=2,
                        backend=backend)
    model = SequenceEncoder(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)       # far from GPT-2's small init, so every head matters
    return model


def _tokens(n=5, seed=1):
    return torch.randint(0, 10, (n, 6), generator=torch.Generator().manual_seed(seed))


def _zero_columns_reference(model, heads, x):
    """A copy of the model with W_O's columns for each ablated head set to zero (and nothing else)."""
    import copy

    clone = copy.deepcopy(model)
    layers = interp.attention_layers(clone)
    with torch.no_grad():
        for layer, head in heads:
            width = layers[layer].d_head
            layers[layer].proj.weight[:, head * width:(head + 1) * width] = 0.0
        return clone(x)


@pytest.mark.parametrize("backend", ["sdpa", "functional", "ops"])
def test_ablating_heads_equals_zeroing_their_output_columns(backend):
    model, x = _encoder(backend), _tokens()
    before = model(x).detach()
    heads = [(0, 1), (1, 3), (1, 0)]
    with torch.no_grad(), interp.ablate_heads(model, heads):
        ablated = model(x)
    torch.testing.assert_close(ablated, _zero_columns_reference(model, heads, x))
    assert not torch.allclose(ablated, before)
    torch.testing.assert_close(model(x).detach(), before)       # hooks gone after the block


def test_unknown_head_is_named():
    with pytest.raises(ValueError, match=r"head \(layer=2, head=0\) does not exist: the model has 2 layers of 4"):
        with interp.ablate_heads(_encoder(), [(2, 0)]):
            pass
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        interp.attention_layers(torch.nn.Linear(2, 2))


def _loss_of(x, y):
    return lambda model: torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()


def test_head_importance_is_the_loss_change_of_each_ablation():
    model, x, y = _encoder(), _tokens(8), _tokens(8, seed=2)
    loss_of = _loss_of(x, y)
    importance = interp.head_importance(model, loss_of)
    assert importance.shape == (2, 4)
    base = loss_of(model)
    for layer, head in [(0, 0), (1, 2)]:
        with torch.no_grad():
            logits = _zero_columns_reference(model, [(layer, head)], x)
        manual = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()).item() - base
        assert importance[layer, head].item() == pytest.approx(manual, abs=1e-5)


def test_pruning_curves_remove_heads_in_order():
    model, x, y = _encoder(), _tokens(8), _tokens(8, seed=2)
    loss_of = _loss_of(x, y)
    importance = torch.arange(8.0).view(2, 4).flip(1)          # (0, 3) least important, then (0, 2) ...
    curve = interp.pruning_curve(model, importance, loss_of)
    assert [kept for kept, _ in curve] == list(range(8, -1, -1))
    assert curve[0][1] == pytest.approx(loss_of(model))
    with interp.ablate_heads(model, [(0, 3)]):
        assert curve[1][1] == pytest.approx(loss_of(model))
    with interp.ablate_heads(model, [(0, 3), (0, 2)]):
        assert curve[2][1] == pytest.approx(loss_of(model))
    everything = [(layer, head) for layer in range(2) for head in range(4)]
    with interp.ablate_heads(model, everything):
        assert curve[-1][1] == pytest.approx(loss_of(model))


def test_greedy_pruning_removes_the_cheapest_head_first():
    model, x, y = _encoder(), _tokens(8), _tokens(8, seed=2)
    loss_of = _loss_of(x, y)
    curve = interp.greedy_pruning_curve(model, loss_of, loss_of)
    assert [kept for kept, _ in curve] == list(range(8, -1, -1))
    one_at_a_time = interp.head_importance(model, loss_of)
    assert curve[1][1] == pytest.approx(loss_of(model) + one_at_a_time.min().item(), abs=1e-5)


def test_cached_head_outputs_rebuild_the_attention_output():
    model, x = _encoder(), _tokens()
    out, heads = interp.cache_head_outputs(model, x)
    _, cache = run_with_cache(model, x, names="hook_out")
    torch.testing.assert_close(out, model(x))
    for layer, z in enumerate(heads):
        assert z.shape == (5, 6, 4, 4)                          # (B, T, H, Dh)
        proj = model.blocks[layer].attn.proj
        torch.testing.assert_close(proj(z.flatten(-2)), cache[f"blocks.{layer}.attn.hook_out"])


def test_patching_clean_values_into_the_clean_run_changes_nothing():
    model, x = _encoder(), _tokens()
    out, heads = interp.cache_head_outputs(model, x)
    with torch.no_grad(), interp.patch_heads(model, {(1, 2): heads[1][..., 2, :], (0, 0): heads[0][..., 0, :]}):
        torch.testing.assert_close(model(x), out)
    with pytest.raises(ValueError, match="patch for head"):
        with torch.no_grad(), interp.patch_heads(model, {(0, 0): torch.zeros(5, 6, 3)}):
            model(x)


def test_patching_effects_where_the_answer_is_known():
    model, clean = _encoder(), _tokens(16)
    corrupt = clean.clone()
    corrupt[:, 2] = (clean[:, 2] + 3) % 10                     # only input position 2 differs
    rows = torch.arange(16)

    def metric(logits):                                        # the clean token's margin at output 4
        return (logits[rows, 4, clean[:, 2]] - logits[rows, 4, corrupt[:, 2]]).mean().item()

    effects = interp.patching_effects(model, clean, corrupt, metric)
    assert effects["heads"].shape == (2, 4) and effects["residual"].shape == (3, 6)
    resid = effects["residual"]
    assert resid[0, 2].item() == pytest.approx(1.0)           # the changed token itself: all of it
    others = [p for p in range(6) if p != 2]
    assert resid[0, others].abs().max().item() < 1e-6          # identical there in both runs
    assert resid[2, 4].item() == pytest.approx(1.0)           # the last stream at the answer position
    with pytest.raises(ValueError, match="must match"):
        interp.patching_effects(model, clean, corrupt[:, :5], metric)
    with pytest.raises(ValueError, match="nothing to restore"):
        interp.restored_fraction(0.3, 1.0, 1.0)


def test_uniform_attention_averages_the_values():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, backend="sdpa")
    x = torch.randn(3, 5, 8)
    with torch.no_grad(), interp.uniform_attention(attn):
        out = attn(x)
        _, v = attn.qkv(x).split(8, dim=-1)[1:]                # (B, S, C)
        expected = attn.proj(v.mean(1, keepdim=True).expand(-1, 5, -1))
    torch.testing.assert_close(out, expected)
    assert attn.backend == "sdpa"                               # restored
    mask = torch.ones(3, 1, 1, 5, dtype=torch.bool)
    mask[:, ..., 3:] = False                                     # keys 3, 4 are padding
    with torch.no_grad(), interp.uniform_attention(attn):
        out = attn(x, mask)
        expected = attn.proj(v[:, :3].mean(1, keepdim=True).expand(-1, 5, -1))
    torch.testing.assert_close(out, expected)


def test_patches_of_the_wrong_shape_are_refused_not_broadcast():
    model = SequenceEncoder(EncoderConfig(vocab_size=10, max_len=6, d_model=16, n_heads=2, n_layers=1))
    x = torch.randint(0, 10, (3, 6))
    with pytest.raises(ValueError, match=r"\(B, C\) = \(3, 16\)"), interp.patch_residual(model, 0, 1, torch.zeros(16)):
        model(x)                                                     # one (C,) vector for the whole batch


def test_patching_effects_per_head_runs_the_corrupted_input_with_that_head_patched():
    """Each head's entry is what patching that head alone into the *corrupted* run restores (a bug that
    ran the clean input for every head would give 1.0 everywhere)."""
    model, clean = _encoder(), _tokens(16)
    corrupt = clean.clone()
    corrupt[:, 2] = (clean[:, 2] + 3) % 10
    rows = torch.arange(16)

    def metric(logits):
        return (logits[rows, 4, clean[:, 2]] - logits[rows, 4, corrupt[:, 2]]).mean().item()

    effects = interp.patching_effects(model, clean, corrupt, metric)["heads"]     # (L, H)
    clean_out, heads = interp.cache_head_outputs(model, clean)
    with torch.no_grad():
        m_clean, m_corrupt = metric(clean_out), metric(model(corrupt))
        for layer, head in ((0, 1), (1, 3)):
            with interp.patch_heads(model, {(layer, head): heads[layer][..., head, :]}):
                expected = interp.restored_fraction(metric(model(corrupt)), m_clean, m_corrupt)
            assert effects[layer, head].item() == pytest.approx(expected, abs=1e-5)
    assert (effects - 1).abs().max() > 0.1, effects            # one head alone does not restore it all


def test_uniform_attention_keeps_keys_whose_weight_underflowed():
    """A key whose learned weight underflows to exactly 0 is still a key the row may see: uniform
    attention spreads over it (inferring the mask from pattern > 0 would drop it)."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, backend="sdpa")
    x = 60.0 * torch.randn(3, 5, 8)                            # scores so large that softmax underflows
    _, cache = run_with_cache(attn, x, names="hook_pattern")
    assert (cache["hook_pattern"] == 0).any()                   # the planted situation is there
    with torch.no_grad(), interp.uniform_attention(attn):
        out = attn(x)
        _, v = attn.qkv(x).split(8, dim=-1)[1:]                # (B, S, C)
        expected = attn.proj(v.mean(1, keepdim=True).expand(-1, 5, -1))
    torch.testing.assert_close(out, expected)


def test_uniform_attention_in_chosen_layers_only():
    model, x = _encoder(), _tokens()
    _, before = run_with_cache(model, x, names="hook_pattern")
    with torch.no_grad(), interp.uniform_attention(model, layers=[-1]):
        _, cache = run_with_cache(model, x, names="hook_pattern")
    first, last = (f"blocks.{i}.attn.hook_pattern" for i in (0, 1))
    torch.testing.assert_close(cache[first], before[first])                  # layer 0 as learned
    torch.testing.assert_close(cache[last], torch.full_like(cache[last], 1 / 6))   # layer 1 uniform
    assert [b.attn.backend for b in model.blocks] == ["sdpa", "sdpa"]
    with pytest.raises(ValueError, match="layer 2 does not exist"):
        with interp.uniform_attention(model, layers=[2]):
            pass
