"""flash.py: online softmax and tiled attention with a hand backward, against the autograd reference.

Gradients are always compared with a random upstream gradient (never ``.sum()``). Planted bugs that
these tests catch: dropping the rescale e^(m_old − m_new) in the online softmax (values differ once a
later block raises the max), forgetting the causal offset S − T (causal T ≠ S cases fail), using
rowsum(dO) instead of rowsum(dO ⊙ O) for D (dQ, dK differ), and saving the tile probabilities
(the saved-bytes test fails).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflex_lab import functional
from attnflex_lab.kernels import flash, memory
from attnflex_lab.modules import causal_mask

F64 = torch.float64


def _inputs(lead, T, S, D, Dv, seed=0, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(*lead, T, D, generator=gen, dtype=dtype)
    k = torch.randn(*lead, S, D, generator=gen, dtype=dtype)
    v = torch.randn(*lead, S, Dv, generator=gen, dtype=dtype)
    grad_out = torch.randn(*lead, T, Dv, generator=gen, dtype=dtype)
    return q, k, v, grad_out


def _values_and_grads(fn, q, k, v, grad_out):
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_outputs=grad_out)
    return out.detach(), grads


def _reference(mask, causal):
    def fn(q, k, v):
        full = mask
        if causal:
            tri = causal_mask(q.shape[-2], k.shape[-2])
            full = tri if mask is None else mask & tri
        return functional.attention(q, k, v, full)[0]
    return fn


def _assert_matches(q, k, v, grad_out, mask=None, causal=False, atol=1e-10, **blocks):
    ours = _values_and_grads(lambda q, k, v: flash.flash_attention(q, k, v, mask, causal=causal, **blocks),
                             q, k, v, grad_out)
    ref = _values_and_grads(_reference(mask, causal), q, k, v, grad_out)
    torch.testing.assert_close(ours[0], ref[0], atol=atol, rtol=0)
    for name, a, b in zip("qkv", ours[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=lambda m, name=name: f"d{name}: {m}")


# --- online softmax ------------------------------------------------------------------------------

@pytest.mark.parametrize("block", [1, 3, 7, 16, 100])
def test_online_softmax_equals_softmax(block):
    x = 4 * torch.randn(5, 16, generator=torch.Generator().manual_seed(1), dtype=F64)
    x[:, -1] += 20  # the max arrives in the last block: the old sums must be rescaled
    torch.testing.assert_close(flash.online_softmax(x, block), x.softmax(-1), atol=1e-14, rtol=0)


def test_online_softmax_fully_masked_row_is_zero():
    x = torch.randn(3, 8, dtype=F64)
    x[1] = float("-inf")
    x[2, :5] = float("-inf")  # the first blocks are all −∞, then finite scores arrive
    p = flash.online_softmax(x, 2)
    assert not p.isnan().any()
    assert torch.equal(p[1], torch.zeros(8, dtype=F64))
    torch.testing.assert_close(p[2], x[2].softmax(-1), atol=1e-14, rtol=0)


# --- values and gradients against the reference --------------------------------------------------

@pytest.mark.parametrize("T,S,block_q,block_k", [
    (8, 8, 4, 4),      # blocks divide T and S
    (7, 11, 3, 4),     # ragged: neither divides
    (13, 5, 4, 8),     # one key block larger than S
    (1, 9, 2, 2),      # a single query
])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference_fp64(T, S, block_q, block_k, causal):
    q, k, v, grad_out = _inputs((2, 3), T, S, D=5, Dv=4)
    _assert_matches(q, k, v, grad_out, causal=causal, block_q=block_q, block_k=block_k)


@pytest.mark.parametrize("mask_shape", [(2, 1, 1, 11), (7, 11), (11,), (2, 3, 7, 11)])
@pytest.mark.parametrize("causal", [False, True])
def test_masks_broadcast(mask_shape, causal):
    q, k, v, grad_out = _inputs((2, 3), 7, 11, D=4, Dv=3, seed=2)
    mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(3)) > 0.3
    _assert_matches(q, k, v, grad_out, mask=mask, causal=causal, block_q=3, block_k=4)


def test_causal_t_ne_s_is_bottom_right_aligned():
    # T > S: the first T − S queries see no key at all (as modules.causal_mask says).
    q, k, v, grad_out = _inputs((2,), 9, 4, D=3, Dv=3, seed=4)
    out = flash.flash_attention(q, k, v, causal=True, block_q=2, block_k=2)
    assert torch.equal(out[:, :5], torch.zeros(2, 5, 3, dtype=F64))
    _assert_matches(q, k, v, grad_out, causal=True, block_q=2, block_k=3)
    # T < S: the last query sees every key, the first sees S − T + 1 of them.
    q, k, v, grad_out = _inputs((2,), 3, 8, D=3, Dv=3, seed=5)
    _assert_matches(q, k, v, grad_out, causal=True, block_q=2, block_k=3)


def test_fully_masked_rows_give_zeros_and_zero_gradients():
    q, k, v, grad_out = _inputs((2, 2), 6, 9, D=4, Dv=3, seed=6)
    mask = torch.rand(2, 2, 6, 9, generator=torch.Generator().manual_seed(7)) > 0.4
    mask[0, 1, 2] = False
    mask[1, :, 5] = False
    out, (dq, dk, dv) = _values_and_grads(
        lambda q, k, v: flash.flash_attention(q, k, v, mask, block_q=4, block_k=4), q, k, v, grad_out)
    for t in (out, dq, dk, dv):
        assert t.isfinite().all()
    assert torch.equal(out[0, 1, 2], torch.zeros(3, dtype=F64))
    assert torch.equal(out[1, :, 5], torch.zeros(2, 3, dtype=F64))
    assert torch.equal(dq[0, 1, 2], torch.zeros(4, dtype=F64))
    assert torch.equal(dq[1, :, 5], torch.zeros(2, 4, dtype=F64))
    _assert_matches(q, k, v, grad_out, mask=mask, block_q=4, block_k=4)


def test_gradcheck_fp64():
    q, k, v, _ = _inputs((2,), 5, 7, D=3, Dv=2, seed=8)
    mask = torch.rand(5, 7, generator=torch.Generator().manual_seed(9)) > 0.3
    mask[1] = False

    def fn(q, k, v):
        return flash.flash_attention(q, k, v, mask, causal=True, block_q=2, block_k=3)

    assert torch.autograd.gradcheck(fn, tuple(t.clone().requires_grad_() for t in (q, k, v)))


def test_matches_sdpa_fp32():
    q, k, v, grad_out = _inputs((2, 4), 70, 70, D=16, Dv=16, seed=10, dtype=torch.float32)
    ours = _values_and_grads(lambda q, k, v: flash.flash_attention(q, k, v, causal=True, block_q=32,
                                                                   block_k=16), q, k, v, grad_out)
    ref = _values_and_grads(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                            q, k, v, grad_out)
    for a, b in zip((ours[0], *ours[1]), (ref[0], *ref[1]), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_tiled_autograd_counter_example_agrees():
    q, k, v, grad_out = _inputs((2,), 9, 6, D=3, Dv=4, seed=11)
    ours = _values_and_grads(lambda q, k, v: flash.tiled_attention_autograd(q, k, v, causal=True, block_q=4,
                                                                            block_k=4), q, k, v, grad_out)
    ref = _values_and_grads(_reference(None, True), q, k, v, grad_out)
    torch.testing.assert_close(ours[0], ref[0], atol=1e-12, rtol=0)
    for a, b in zip(ours[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 2), max_size=2), T=st.integers(1, 12), S=st.integers(1, 12),
       D=st.integers(1, 6), block_q=st.integers(1, 8), block_k=st.integers(1, 8), causal=st.booleans(),
       masked=st.booleans(), seed=st.integers(0, 2**16))
def test_property_matches_functional_attention(lead, T, S, D, block_q, block_k, causal, masked, seed):
    q, k, v, grad_out = _inputs(tuple(lead), T, S, D=D, Dv=D + 1, seed=seed)
    mask = (torch.rand(T, S, generator=torch.Generator().manual_seed(seed)) > 0.4) if masked else None
    _assert_matches(q, k, v, grad_out, mask=mask, causal=causal, block_q=block_q, block_k=block_k)


# --- what the forward saves, and which tiles it visits -------------------------------------------

def _saved_bytes(fn, T, S, D=8):
    q, k, v, _ = _inputs((2,), T, S, D=D, Dv=D, dtype=torch.float32)
    leaves = [t.requires_grad_() for t in (q, k, v)]
    return memory.saved_tensor_bytes(lambda: fn(*leaves))


def test_forward_saves_only_inputs_out_and_lse():
    T, S, D, B = 128, 256, 8, 2
    saved = _saved_bytes(lambda q, k, v: flash.flash_attention(q, k, v, block_q=32, block_k=32), T, S, D)
    numbers = B * (T * D + S * D + S * D + T * D + T)   # q, k, v, out and the row log-sum-exp
    assert saved == 4 * numbers
    assert saved < 4 * B * T * S / 4  # far below one (T, S) matrix


def test_saved_bytes_linear_in_length_but_quadratic_for_autograd():
    def flash_fn(q, k, v):
        return flash.flash_attention(q, k, v, block_q=32, block_k=32)

    def autograd_fn(q, k, v):
        return flash.tiled_attention_autograd(q, k, v, block_q=32, block_k=32)

    small, big = _saved_bytes(flash_fn, 32, 32), _saved_bytes(flash_fn, 128, 128)
    assert big == pytest.approx(4 * small, rel=0.01)            # 4× the length: 4× the bytes
    small, big = _saved_bytes(autograd_fn, 32, 32), _saved_bytes(autograd_fn, 128, 128)
    assert big > 6 * small    # T·S grows 16×, T·D 4×: well past linear
    assert big >= 4 * 2 * 128 * 128                             # at least one (T, S) matrix per head


def test_causal_skips_blocks_above_the_diagonal():
    visited = [(i0, j0) for i0 in range(0, 8, 4) for j0, _, _ in flash.key_blocks(i0, min(i0 + 4, 8), 8, 8, 4, True)]
    assert visited == [(0, 0), (4, 0), (4, 4)]
    # T < S: keys run ahead, so the first query block already sees S − T extra keys
    assert [j0 for j0, _, _ in flash.key_blocks(0, 4, 4, 12, 4, True)] == [0, 4, 8]
    # T > S: queries 0..5 see nothing, so their block visits no tile at all
    assert list(flash.key_blocks(0, 4, 10, 4, 2, True)) == []


def test_peak_bytes_far_below_naive():
    q, k, v, grad_out = _inputs((2, 2), 128, 128, D=16, Dv=16, dtype=torch.float32)
    leaves = [t.requires_grad_() for t in (q, k, v)]

    def step(fn):
        return lambda: fn(*leaves).backward(grad_out)

    naive = memory.peak_bytes(step(lambda q, k, v: functional.attention(q, k, v)[0]))
    tiled = memory.peak_bytes(step(lambda q, k, v: flash.flash_attention(q, k, v, block_q=32, block_k=32)))
    assert naive >= 3 * 4 * 4 * 128 * 128       # several (B·H, T, S) float32 tensors at once
    assert tiled < naive / 5
    assert memory.peak_bytes(step(lambda q, k, v: flash.flash_attention(q, k, v, block_q=32, block_k=32))) == tiled


def test_trace_tiles_ends_with_the_softmax_normaliser():
    q, k, _, _ = _inputs((), 6, 7, D=3, Dv=3)
    steps = flash.trace_tiles(q, k, block_q=4, block_k=3)
    assert [s["rows"] for s in steps] == [(0, 4)] * 3 + [(4, 6)] * 3
    scores = (q @ k.T) / math.sqrt(3)
    last = steps[2]
    torch.testing.assert_close(last["m"], scores[:4].amax(-1))
    torch.testing.assert_close(last["l"], (scores[:4] - last["m"][:, None]).exp().sum(-1))


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,error,words", [
    ({"block_q": 0}, ValueError, "block_q"),
    ({"block_k": 2.5}, TypeError, "block_k"),
    ({"causal": 1}, TypeError, "causal"),
    ({"scale": float("nan")}, ValueError, "scale"),
])
def test_bad_arguments(kwargs, error, words):
    q, k, v, _ = _inputs((), 3, 4, D=2, Dv=2)
    with pytest.raises(error, match=words):
        flash.flash_attention(q, k, v, **kwargs)


def test_bad_shapes_and_dtypes_are_named():
    q, k, v, _ = _inputs((2,), 3, 4, D=2, Dv=2)
    with pytest.raises(ValueError, match=r"\(2, 3, 2\).*\(2, 4, 3\)"):
        flash.flash_attention(q, torch.randn(2, 4, 3, dtype=F64), v)
    with pytest.raises(TypeError, match="float32"):
        flash.flash_attention(q, k.float(), v)
    with pytest.raises(TypeError, match="bool"):
        flash.flash_attention(q, k, v, torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"\(5, 4\)"):
        flash.flash_attention(q, k, v, torch.ones(5, 4, dtype=torch.bool))


def test_autocast_runs_in_float32():
    q, k, v, _ = _inputs((2,), 6, 6, D=4, Dv=4, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = flash.flash_attention(q, k, v, causal=True, block_q=4, block_k=4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, flash.flash_attention(q, k, v, causal=True, block_q=4, block_k=4))
