"""flash.py in bf16/fp16 against fp64, and both backward loop orders against the reference.

Precision: the error of flash_attention (values and gradients) against a float64 reference on the
same rounded inputs must stay within 1.5× the error of PyTorch's own SDPA at that dtype. SDPA on CPU
keeps float32 accumulators and rounds once at the end; so does flash (measured ratios 0.46–0.82 over
3 seeds, bf16 and fp16). With m, ℓ and the output accumulator in bf16/fp16 (the planted bug: the code
before this test) the ratios were 2.7–5.2, because every tile's rescale-and-add rounds again.
The margin 1.5 covers a different summation order; it is well below what one extra rounding per tile gives.

SDPA wrapper: with tril(0) (top-left) instead of tril(S − T) its T ≠ S tests fail.

Loop orders: the planted bugs caught are a query_blocks that skips a block it must visit (causal T ≠ S
cases fail: dK, dV miss contributions) and a kv_outer loop that forgets to pass ``partly`` (masked
entries leak into causal gradients).
"""

import pytest
import torch
import torch.nn.functional as F

from attnflex_lab import functional
from attnflex_lab.kernels import flash
from attnflex_lab.modules import causal_mask

F64 = torch.float64
K_SDPA = 1.5   # flash's error may be at most this multiple of SDPA's error at the same dtype (see above)


def _rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


def _out_and_grads(fn, inputs, grad_out, dtype):
    leaves = [t.to(dtype).requires_grad_() for t in inputs]
    out = fn(*leaves)
    return (out, *torch.autograd.grad(out, leaves, grad_out.to(dtype)))


@pytest.mark.parametrize("dtype,order", [(torch.bfloat16, "kv_outer"), (torch.float16, "kv_outer"),
                                         (torch.bfloat16, "q_outer")])
def test_low_precision_error_within_sdpa_error(dtype, order):
    gen = torch.Generator().manual_seed(0)
    # inputs rounded to dtype first: the fp64 reference sees the very same numbers, so only arithmetic differs
    q, k, v, grad_out = (torch.randn(2, 2, 256, 32, generator=gen, dtype=F64).to(dtype) for _ in range(4))

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def ours(q, k, v):
        return flash.flash_attention(q, k, v, causal=True, block_q=32, block_k=16, backward_order=order)

    reference = _out_and_grads(sdpa, (q, k, v), grad_out, F64)
    sdpa_low = _out_and_grads(sdpa, (q, k, v), grad_out, dtype)
    ours_low = _out_and_grads(ours, (q, k, v), grad_out, dtype)
    for name, a, s, r in zip(["O", "dQ", "dK", "dV"], ours_low, sdpa_low, reference, strict=True):
        assert a.dtype == dtype, f"{name} should come back in {dtype}, got {a.dtype}"
        ours_err, sdpa_err = _rel(a, r), _rel(s, r)
        assert ours_err <= K_SDPA * sdpa_err, f"{name}: rel. error {ours_err:.2e} > {K_SDPA} × SDPA's {sdpa_err:.2e}"


def test_lse_and_accumulators_are_float32_for_bf16():
    q, k, v = (torch.randn(1, 40, 8, dtype=torch.bfloat16) for _ in range(3))
    out, lse = flash.tiled_forward(q, k, v, None, False, 8 ** -0.5, 16, 16)
    assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
    assert flash.accumulator_dtype(torch.float64) == F64


# --- both loop orders of the backward --------------------------------------------------------------

def _grads(fn, q, k, v, grad_out):
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    return torch.autograd.grad(fn(*leaves), leaves, grad_outputs=grad_out)


@pytest.mark.parametrize("order", flash.BACKWARD_ORDERS)
@pytest.mark.parametrize("T,S,block_q,block_k", [(7, 11, 3, 4), (13, 5, 4, 2), (9, 4, 2, 3), (3, 8, 2, 3)])
def test_backward_orders_match_reference(order, T, S, block_q, block_k):
    gen = torch.Generator().manual_seed(T * 100 + S)
    q, k, v = (torch.randn(2, 3, n, 4, generator=gen, dtype=F64) for n in (T, S, S))
    grad_out = torch.randn(2, 3, T, 4, generator=gen, dtype=F64)           # a random upstream gradient
    mask = torch.rand(T, S, generator=gen) > 0.3
    mask[T // 2] = False                                                   # a fully masked row
    full = mask & causal_mask(T, S)
    ours = _grads(lambda q, k, v: flash.flash_attention(q, k, v, mask, causal=True, block_q=block_q,
                                                        block_k=block_k, backward_order=order), q, k, v, grad_out)
    ref = _grads(lambda q, k, v: functional.attention(q, k, v, full)[0], q, k, v, grad_out)
    for name, a, b in zip("qkv", ours, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0, msg=lambda m, name=name: f"d{name} ({order}): {m}")


@pytest.mark.parametrize("order", flash.BACKWARD_ORDERS)
def test_backward_orders_gradcheck_fp64(order):
    gen = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(2, n, 3, generator=gen, dtype=F64, requires_grad=True) for n in (5, 7, 7))

    def fn(q, k, v):
        return flash.flash_attention(q, k, v, causal=True, block_q=2, block_k=3, backward_order=order)

    assert torch.autograd.gradcheck(fn, (q, k, v))


def test_query_blocks_visit_the_same_tiles_as_key_blocks():
    for T, S, bq, bk in [(8, 8, 4, 4), (10, 4, 3, 2), (4, 12, 3, 5), (7, 7, 2, 3)]:
        by_rows = {(i0, j0, partly) for i0 in range(0, T, bq)
                   for j0, _, partly in flash.key_blocks(i0, min(i0 + bq, T), T, S, bk, True)}
        by_cols = {(i0, j0, partly) for j0 in range(0, S, bk)
                   for i0, _, partly in flash.query_blocks(j0, min(j0 + bk, S), T, S, bq, True)}
        assert by_rows == by_cols, (T, S, bq, bk)


def test_bad_backward_order_is_named():
    q = torch.randn(3, 2)
    with pytest.raises(ValueError, match="backward_order"):
        flash.flash_attention(q, q, q, backward_order="diagonal")


# --- SDPA's causal alignment ---------------------------------------------------------------------

@pytest.mark.parametrize("T,S", [(3, 8), (9, 4)])
def test_sdpa_wrapper_warns_for_t_ne_s_and_aligns_bottom_right(T, S):
    gen = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(2, n, 4, generator=gen, dtype=F64) for n in (T, S, S))
    with pytest.warns(UserWarning, match="top left"):
        out = flash.sdpa(q, k, v, causal=True)
    ours = flash.flash_attention(q, k, v, causal=True)
    has_keys = causal_mask(T, S).any(-1)                                   # T > S: SDPA gives NaN for empty rows
    torch.testing.assert_close(out[:, has_keys], ours[:, has_keys], atol=1e-12, rtol=0)
    top_left = F.scaled_dot_product_attention(q, k, v, is_causal=True)   # what is_causal alone computes
    assert not torch.allclose(top_left[:, has_keys], ours[:, has_keys], atol=1e-3)


def test_sdpa_wrapper_is_silent_and_fused_when_t_equals_s(recwarn):
    q = torch.randn(2, 6, 4, dtype=F64)
    expected = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    torch.testing.assert_close(flash.sdpa(q, q, q, causal=True), expected)
    assert not recwarn.list
