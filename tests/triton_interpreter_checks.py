"""The Triton kernel in Triton's interpreter on CPU. Run by tests/test_triton_flash.py in a fresh process with
TRITON_INTERPRET=1 set before Triton is imported (its own library is built for one mode at import), so this file
is not collected by the main run (its name does not start with test_).

Planted bugs these catch: dropping the rescale alpha in the kernel's accumulator (values differ once a later
block raises the max), the causal test without the S − T offset (T ≠ S fails), the mask tile loaded but not
applied (masked cases fail), lse = m + l instead of m + log l, and an update helper without the −∞ guard.
"""

import pytest
import torch
import torch.nn.functional as F

from attnflex_lab.exercises import ExerciseError, check
from attnflex_lab.kernels import flash, load_triton_flash

tf = load_triton_flash(interpret=True)   # sets TRITON_INTERPRET=1 (already set by the caller) before Triton's import
import triton  # noqa: E402  (after the loader: the interpreter reads `tl` from each jit function's globals)
import triton.language as tl  # noqa: E402

F64 = torch.float64


def _inputs(T, S, D=16, Dv=12, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 2, n, w, generator=gen, dtype=F64).to(dtype) for n, w in ((T, D), (S, D), (S, Dv)))
    mask = torch.rand(T, S, generator=gen) > 0.3
    mask[T // 2] = False                                                   # a fully masked row
    return q, k, v, mask


def test_kernels_run_in_the_interpreter():
    from triton.runtime.interpreter import InterpretedFunction

    assert tf.INTERPRETED and isinstance(tf._flash_forward_kernel, InterpretedFunction)


@pytest.mark.parametrize("T,S,causal,masked", [     # ragged: no block divides T or S
    (40, 23, False, False), (40, 23, True, True), (23, 40, True, False), (23, 40, False, True), (1, 17, True, True)])
def test_forward_matches_reference_fp32(T, S, causal, masked):
    q, k, v, mask = _inputs(T, S, seed=T + S)
    mask = mask if masked else None
    out, lse = tf.triton_flash_forward(q, k, v, mask, causal=causal, block_q=16, block_k=16)
    ref_out, ref_lse = flash.tiled_forward(q.double(), k.double(), v.double(), mask, causal, 16 ** -0.5, 8, 8)
    assert out.dtype == torch.float32 and lse.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref_out, atol=2e-6, rtol=0)
    torch.testing.assert_close(lse.double(), ref_lse, atol=2e-6, rtol=0)   # +∞ on fully masked rows, both


def test_causal_t_greater_than_s_rows_without_keys_are_zero():
    q, k, v, _ = _inputs(30, 12, seed=3)
    out, lse = tf.triton_flash_forward(q, k, v, causal=True, block_q=16, block_k=16)
    assert torch.equal(out[..., :18, :], torch.zeros_like(out[..., :18, :]))   # rows i < T − S see no key
    assert torch.isinf(lse[..., :18]).all() and torch.isfinite(lse[..., 18:]).all()


def _rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


def test_bf16_error_within_sdpa_error():
    q, k, v, mask = _inputs(48, 40, Dv=16, seed=5, dtype=torch.bfloat16)   # inputs rounded to bf16 first
    out, lse = tf.triton_flash_forward(q, k, v, mask, block_q=16, block_k=16)
    assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
    reference = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), mask)
    sdpa = F.scaled_dot_product_attention(q, k, v, mask)
    reference, sdpa = (torch.where(mask.any(-1)[:, None], t, 0) for t in (reference, sdpa))   # SDPA: NaN rows
    assert _rel(out, reference) <= 1.5 * _rel(sdpa, reference)             # the same k as tests/test_flash_precision


def test_gradients_through_the_hand_backward():
    q, k, v, mask = _inputs(33, 21, seed=6)
    grad_out = torch.randn(2, 2, 33, 12, generator=torch.Generator().manual_seed(7))   # a random upstream gradient

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        return (out, *torch.autograd.grad(out, leaves, grad_out))

    ours = grads(lambda q, k, v: tf.triton_flash_attention(q, k, v, mask, causal=True, block_q=16, block_k=16))
    ref = grads(lambda q, k, v: flash.flash_attention(q, k, v, mask, causal=True, block_q=16, block_k=16))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_bad_block_is_named():
    q, k, v, _ = _inputs(8, 8)
    with pytest.raises(ValueError, match="block_k"):
        tf.triton_flash_forward(q, k, v, block_k=24)


# --- the exercise: the kernel's online-softmax update ---------------------------------------------

@triton.jit
def learners_update(m_i, l_i, z):
    m_new = tl.maximum(m_i, tl.max(z, 1))
    ref = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp(m_i - ref)
    p = tl.exp(z - ref[:, None])
    return m_new, l_i * alpha + tl.sum(p, 1), alpha, p


def test_a_written_out_update_passes_the_check():
    assert check("07.triton_online_update", tf.run_update(learners_update)).status == "correct"


@triton.jit
def calls_the_package(m_i, l_i, z):
    return tf.online_update(m_i, l_i, z)


@pytest.mark.parametrize("update", [tf.online_update, calls_the_package], ids=["itself", "a wrapper"])
def test_the_packages_own_update_is_refused_and_restored(update):
    with pytest.raises(ExerciseError, match="package's own implementation"):
        check("07.triton_online_update", tf.run_update(update))
    m, l = torch.full((16,), float("-inf")), torch.zeros(16)                 # nothing seen yet
    z = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    m_new, l_new, _, _ = tf.run_update(learners_update)(m, l, z)          # the probe is usable again,
    assert torch.allclose(m_new, z.amax(-1))                               # and so is the kernel:
    q, k, v, _ = _inputs(20, 20)
    out, _ = tf.triton_flash_forward(q, k, v, block_q=16, block_k=16)
    assert torch.allclose(out, flash.tiled_forward(q, k, v, None, False, 16 ** -0.5, 16, 16)[0], atol=1e-5)


def test_update_without_rescale_is_caught():
    @triton.jit
    def no_rescale(m_i, l_i, z):
        m_new = tl.maximum(m_i, tl.max(z, 1))
        ref = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(z - ref[:, None])
        return m_new, l_i + tl.sum(p, 1), tl.exp(m_i - ref), p

    with pytest.raises(ExerciseError, match="rescale"):
        check("07.triton_online_update", tf.run_update(no_rescale))


def test_stub_is_not_attempted():
    @triton.jit
    def stub(m_i, l_i, z):
        raise NotImplementedError

    assert check("07.triton_online_update", tf.run_update(stub)).status == "not attempted"
