"""modules: the three attention backends agree, hooks give declared shapes, positions matter."""

import math

import pytest
import torch

from attnflex_lab import functional
from attnflex_lab.exercises import ExerciseError, check
from attnflex_lab.modules import (
    BACKENDS,
    LearnedPositionalEncoding,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    TransformerBlock,
    causal_mask,
    hook_points,
    padding_mask,
    rope,
    run_with_cache,
    set_backend,
)

B, T, C, H = 3, 7, 24, 4


# The three backends' agreement (values and gradients, every kind of mask) is tested in
# test_sdpa_masked_rows.py.


def test_hooks_have_declared_shapes_and_patterns_are_distributions():
    torch.manual_seed(0)
    block = TransformerBlock(C, H, backend="sdpa")
    x = torch.randn(B, T, C)
    mask = padding_mask(torch.tensor([7, 5, 3]), T)
    out, cache = run_with_cache(block, x, mask, causal=True)
    assert set(cache) == {"attn.hook_scores", "attn.hook_pattern", "attn.hook_z", "attn.hook_out",
                          "hook_resid_pre", "hook_resid_post"}
    assert hook_points(block)["attn.hook_pattern"].shape == "(B, H, T, S)"
    assert cache["attn.hook_z"].shape == (B, H, T, C // H)
    torch.testing.assert_close(cache["hook_resid_pre"], x, rtol=0, atol=0)
    torch.testing.assert_close(cache["hook_resid_post"], out, rtol=0, atol=0)
    # hook_z is what the projection reads: the heads concatenated, then attn.proj, give hook_out
    z = cache["attn.hook_z"].transpose(1, 2).reshape(B, T, C)       # (B, H, T, Dh) -> (B, T, C)
    torch.testing.assert_close(block.attn.proj(z), cache["attn.hook_out"])
    assert cache["attn.hook_scores"].shape == (B, H, T, T)
    assert cache["attn.hook_pattern"].shape == (B, H, T, T)
    assert cache["attn.hook_out"].shape == (B, T, C)
    pattern = cache["attn.hook_pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(B, H, T))
    allowed = (mask & causal_mask(T)).expand(B, H, T, T)
    assert (pattern[~allowed] == 0).all()  # masked keys and future keys get no weight
    assert out.shape == (B, T, C)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cached_pattern_is_the_reference_pattern(backend):
    torch.manual_seed(1)
    mha = MultiHeadAttention(C, H, backend=backend)
    x = torch.randn(B, T, C)
    _, cache = run_with_cache(mha, x, causal=True)
    q, k, _ = mha.qkv(x).split(C, dim=-1)
    q, k = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k))
    _, expected = functional.attention(q, k, k, mask=causal_mask(T))
    torch.testing.assert_close(cache["hook_pattern"], expected.detach(), atol=1e-6, rtol=0)


def test_sdpa_computes_no_maps_unless_asked(monkeypatch):
    calls = []
    original = functional.masked_softmax
    monkeypatch.setattr(functional, "masked_softmax", lambda *a, **k: calls.append(1) or original(*a, **k))
    mha = MultiHeadAttention(C, H, backend="sdpa")
    x = torch.randn(B, T, C)
    mha(x, causal=True)
    assert calls == []                       # training pays nothing for the maps
    run_with_cache(mha, x, causal=True)
    assert calls == [1]                      # recomputed once, because the cache asked
    mha(x, causal=True)
    assert calls == [1]                      # hooks are removed after run_with_cache


def test_names_filter_and_unknown_name():
    mha = MultiHeadAttention(C, H)
    _, cache = run_with_cache(mha, torch.randn(1, T, C), names="hook_pattern")
    assert list(cache) == ["hook_pattern"]
    with pytest.raises(ValueError, match="no hook point matches"):
        run_with_cache(mha, torch.randn(1, T, C), names="hook_nothing")


def _permutation_outputs(pos_kind):
    torch.manual_seed(0)
    embed = torch.randn(1, T, C)
    pos = {"none": torch.nn.Identity(), "sinusoidal": SinusoidalPositionalEncoding(C, 16),
           "learned": LearnedPositionalEncoding(C, 16)}[pos_kind]
    block = TransformerBlock(C, H)
    perm = torch.randperm(T, generator=torch.Generator().manual_seed(3))
    out = block(pos(embed))
    out_of_permuted = block(pos(embed[:, perm]))
    return out[:, perm], out_of_permuted


def test_without_positions_permuting_inputs_permutes_outputs():
    permuted_out, out_of_permuted = _permutation_outputs("none")
    torch.testing.assert_close(out_of_permuted, permuted_out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["sinusoidal", "learned"])
def test_positional_encodings_break_permutation_equivariance(kind):
    permuted_out, out_of_permuted = _permutation_outputs(kind)
    assert (out_of_permuted - permuted_out).abs().max() > 1e-2


def test_sinusoidal_table_values():
    pe = SinusoidalPositionalEncoding(8, 10).pe   # (10, 8)
    assert torch.allclose(pe[0, 0::2], torch.zeros(4)) and torch.allclose(pe[0, 1::2], torch.ones(4))
    assert torch.isclose(pe[3, 2], torch.sin(torch.tensor(3.0) / 10000 ** (2 / 8)))
    assert torch.isclose(pe[3, 3], torch.cos(torch.tensor(3.0) / 10000 ** (2 / 8)))


def test_sinusoidal_shift_is_a_rotation():
    """PE[t + k] = R_k PE[t] with R_k block-diagonal 2×2 rotations by k·ω_i, the same R_k for every t."""
    C_pe, k = 16, 5
    pe = SinusoidalPositionalEncoding(C_pe, 64).pe.double()                  # (64, C)
    omega = 10000 ** (-torch.arange(0, C_pe, 2, dtype=torch.float64) / C_pe)  # (C/2,)
    R = torch.zeros(C_pe, C_pe, dtype=torch.float64)
    for i, w in enumerate(omega):  # (sin, cos)(t + k) = [[cos kw, sin kw], [-sin kw, cos kw]] (sin, cos)(t)
        c, s = torch.cos(k * w), torch.sin(k * w)
        R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.stack([torch.stack([c, s]), torch.stack([-s, c])])
    torch.testing.assert_close(pe[k:], pe[:-k] @ R.T, atol=1e-5, rtol=0)
    dots = pe @ pe.T                                                          # (64, 64)
    torch.testing.assert_close(dots.diagonal(k)[:-1], dots.diagonal(k)[1:], atol=1e-5, rtol=0)  # offset only


def test_rope_scores_depend_on_the_offset_only():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 9, 8, dtype=torch.float64), torch.randn(2, 3, 9, 8, dtype=torch.float64)
    scores = rope(q) @ rope(k).transpose(-2, -1)                               # (B, H, T, S)
    shift = torch.arange(9) + 4                                                # every position moved by 4
    shifted = rope(q, shift) @ rope(k, shift).transpose(-2, -1)
    torch.testing.assert_close(shifted, scores, atol=1e-10, rtol=0)            # same offsets, same scores
    torch.testing.assert_close(rope(q).norm(dim=-1), q.norm(dim=-1))           # a rotation keeps lengths
    torch.testing.assert_close(rope(q)[..., 0, :], q[..., 0, :])               # position 0 is not turned
    assert (rope(q) - q)[..., 1:, :].abs().max() > 1e-2                        # the others are
    # one pair turned by hand: position 3, columns (2, 3), ω_1 = 10000^(-2/8)
    a = 3 * 10000 ** (-2 / 8)
    x0, x1 = q[0, 0, 3, 2], q[0, 0, 3, 3]
    expected = torch.stack([x0 * math.cos(a) - x1 * math.sin(a), x0 * math.sin(a) + x1 * math.cos(a)])
    torch.testing.assert_close(rope(q)[0, 0, 3, 2:4], expected)
    with pytest.raises(ValueError, match="even"):
        rope(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, D\), got \(6,\)"):
        rope(torch.randn(6))
    with pytest.raises(ValueError, match=r"positions must have shape \(T,\) = \(5,\)"):
        rope(torch.randn(2, 5, 4), torch.arange(4))


def test_masks():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    pad = padding_mask(torch.tensor([2, 3]), 3)
    assert pad.shape == (2, 1, 1, 3) and pad[0, 0, 0].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="1..S=3"):
        padding_mask(torch.tensor([0, 3]), 3)
    with pytest.raises(TypeError, match="lengths must be a torch.Tensor"):
        padding_mask([2, 3], 3)


def test_set_backend_switches_every_layer():
    model = torch.nn.Sequential(TransformerBlock(C, H), TransformerBlock(C, H))
    set_backend(model, "ops")
    assert [m.attn.backend for m in model] == ["ops", "ops"]
    with pytest.raises(ValueError, match="not one of"):
        set_backend(model, "flash")


def test_bad_inputs_get_clear_errors():
    mha = MultiHeadAttention(C, H)
    with pytest.raises(ValueError, match=r"\(B, T, C=24\)"):
        mha(torch.randn(2, T, C + 1))
    with pytest.raises(TypeError, match="floating-point"):
        mha(torch.ones(2, T, C, dtype=torch.long))
    with pytest.raises(TypeError, match="bool"):
        mha(torch.randn(2, T, C), torch.ones(T, T))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(torch.randn(2, T, C), torch.ones(T, T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="max_len=4"):
        SinusoidalPositionalEncoding(C, 4)(torch.randn(1, 5, C))


def test_lesson05_wrong_answers_are_explained():
    def split_heads_wrong(x, n_heads):  # mixes positions and heads
        B_, T_, C_ = x.shape
        return x.reshape(B_, n_heads, T_, C_ // n_heads)

    with pytest.raises(ExerciseError, match="swap the T and H"):
        check("05.split_heads", split_heads_wrong)
    with pytest.raises(ExerciseError, match="lower triangle"):
        check("05.causal_mask", lambda T_: torch.ones(T_, T_, dtype=torch.bool).triu())

    def pe_swapped(T_, d):  # cos in the even columns, sin in the odd
        from attnflex_lab.exercises.lesson05 import sinusoidal_encoding

        return sinusoidal_encoding(T_, d)[:, [i ^ 1 for i in range(d)]]

    with pytest.raises(ExerciseError, match="entries differ"):
        check("05.sinusoidal_encoding", pe_swapped)
