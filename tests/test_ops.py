"""Hand-derived backward passes (ops) against autograd through the reference math (functional).

Every comparison uses a random upstream gradient g, i.e. differentiates L = Σ ⟨g, output⟩:
with g = 1 (a ``.sum()``) the gradient through a softmax is zero and a wrong backward passes.
"""

import pytest
import torch
import torch.nn.functional as F

from attnflex_lab import functional, ops

F64 = torch.float64
TOL = 1e-10


def _randn(gen, *shape, dtype=F64):
    return torch.randn(*shape, generator=gen, dtype=dtype)


def _grads(fn, inputs, upstream):
    """Outputs of fn and the gradient of Σ ⟨g, output⟩ w.r.t. each input (zeros when unused)."""
    leaves = [x.detach().requires_grad_() for x in inputs]  # keeps strides (non-contiguous too)
    outputs = fn(*leaves)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    loss = sum((y * g).sum() for y, g in zip(outputs, upstream, strict=True) if g is not None)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=True)]
    return [y.detach() for y in outputs], grads


def assert_same(got, expected, what, atol=TOL):
    assert got.shape == expected.shape, f"{what}: shape {got.shape} vs {expected.shape}"
    assert torch.isfinite(got).all(), f"{what}: non-finite entries"
    err = (got - expected).abs().max().item() if got.numel() else 0.0
    assert err <= atol, f"{what}: max abs difference {err:.3e} > {atol:g}"


# (leading dims, T, S, D, Dv, mask shape or None, scale or None)
ATTENTION_CASES = [
    ((), 3, 5, 4, 2, None, None),
    ((2,), 4, 4, 3, 3, "causal", None),
    ((2, 3), 3, 6, 5, 7, (2, 1, 1, 6), None),      # key-padding mask, broadcast over heads, queries
    ((2, 3), 4, 5, 2, 3, (2, 3, 4, 5), 0.37),      # full mask with fully masked rows, custom scale
    ((1, 2), 5, 3, 4, 6, (5, 1), 2.0),             # whole rows on or off (broadcast along keys)
    ((3,), 2, 7, 8, 1, (7,), -0.5),                # (S,) mask, a negative scale
]


def _make_attention_case(case, seed, dtype=F64, contiguous=True):
    lead, t, s, d, dv, mask_shape, scale = case
    gen = torch.Generator().manual_seed(seed)
    if contiguous:
        q = _randn(gen, *lead, t, d, dtype=dtype)
        k = _randn(gen, *lead, s, d, dtype=dtype)
        v = _randn(gen, *lead, s, dv, dtype=dtype)
    else:  # transposed views and a strided slice: non-contiguous strides
        q = _randn(gen, *lead, d, t, dtype=dtype).transpose(-2, -1)
        k = _randn(gen, *lead, d, s, dtype=dtype).transpose(-2, -1)
        v = _randn(gen, *lead, s, 2 * dv, dtype=dtype)[..., ::2]
    if mask_shape is None:
        mask = None
    elif mask_shape == "causal":
        mask = torch.ones(t, s, dtype=torch.bool).tril()
    else:
        mask = torch.rand(mask_shape, generator=gen) > 0.4
        # Guarantee a fully masked query row, but only where the mask has a query dim of its own:
        # on a key-padding mask (..., 1, S) row 0 is every row, and all-zero outputs and gradients
        # would let any backward pass.
        if len(mask_shape) >= 2 and mask_shape[-2] > 1:
            mask[..., 0, :] = False
        assert mask.any(), f"mask {mask_shape} keeps no key: every output and gradient would be 0"
    return q, k, v, mask, scale


@pytest.mark.parametrize("case", ATTENTION_CASES, ids=lambda c: f"lead{c[0]}-T{c[1]}S{c[2]}")
@pytest.mark.parametrize("weights_grad", [False, True], ids=["dO-only", "dO+dP"])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contig", "transposed-q"])
def test_attention_matches_reference(case, weights_grad, contiguous):
    seed = ATTENTION_CASES.index(case)
    q, k, v, mask, scale = _make_attention_case(case, seed=seed, contiguous=contiguous)
    assert all(x.is_contiguous() == contiguous for x in (q, k, v) if x.numel() > 1)
    gen = torch.Generator().manual_seed(1)
    out_shape, w_shape = (*q.shape[:-1], v.shape[-1]), (*q.shape[:-1], k.shape[-2])
    upstream = (_randn(gen, *out_shape), _randn(gen, *w_shape) if weights_grad else None)

    def run(module):
        return _grads(lambda q, k, v: module.attention(q, k, v, mask, scale), (q, k, v), upstream)

    (out, weights), grads = run(ops)
    (ref_out, ref_weights), ref_grads = run(functional)
    assert_same(out, ref_out, "out")
    assert_same(weights, ref_weights, "weights")
    for name, g, ref_g in zip("qkv", grads, ref_grads, strict=True):
        assert_same(g, ref_g, f"d{name}")


def test_attention_masked_entries_get_zero_gradient():
    q, k, v, mask, scale = _make_attention_case(((2, 3), 4, 6, 5, 3, (2, 1, 1, 6), None), seed=3)
    mask[0, ..., 0] = True      # batch 0 keeps key 0 ...
    mask[1, ..., :] = True
    mask[1, ..., 2] = False     # ... batch 1 drops key 2 everywhere
    gen = torch.Generator().manual_seed(0)
    upstream = (_randn(gen, 2, 3, 4, 3), _randn(gen, 2, 3, 4, 6))
    (out, weights), (dq, dk, dv) = _grads(lambda *x: ops.attention(*x, mask), (q, k, v), upstream)
    dropped = ~mask.expand(2, 3, 1, 6)[..., 0, :]              # (B, H, S): keys never attended
    assert dropped.any()
    assert (weights.masked_select(~mask) == 0).all()
    assert (dk[dropped] == 0).all() and (dv[dropped] == 0).all()
    assert dk[~dropped].abs().sum() > 0 and dv[~dropped].abs().sum() > 0


def test_attention_fully_masked_rows_give_zeros_not_nan():
    gen = torch.Generator().manual_seed(0)
    q, k, v = _randn(gen, 2, 4, 3), _randn(gen, 2, 5, 3), _randn(gen, 2, 5, 2)
    mask = torch.rand(2, 4, 5, generator=gen) > 0.3
    mask[:, 1] = False                                        # query 1 may attend to nothing
    upstream = (1e3 * _randn(gen, 2, 4, 2), 1e3 * _randn(gen, 2, 4, 5))  # large g: no overflow
    for module in (ops, functional):
        (out, weights), (dq, dk, dv) = _grads(lambda *x, m=module: m.attention(*x, mask),
                                              (q, k, v), upstream)
        assert (out[:, 1] == 0).all() and (weights[:, 1] == 0).all()
        assert all(torch.isfinite(g).all() for g in (dq, dk, dv))
        assert (dq[:, 1] == 0).all()


def test_attention_only_weights_used():
    """Gradient flowing only through the returned weights (dO = None inside backward)."""
    q, k, v, mask, scale = _make_attention_case(ATTENTION_CASES[2], seed=5)
    gen = torch.Generator().manual_seed(2)
    g = _randn(gen, *q.shape[:-1], k.shape[-2])
    fns = {m: (lambda q, k, v, m=m: m.attention(q, k, v, mask)[1]) for m in (ops, functional)}
    (_, grads), (_, ref_grads) = (_grads(fns[m], (q, k, v), (g,)) for m in (ops, functional))
    for name, a, b in zip("qkv", grads, ref_grads, strict=True):
        assert_same(a, b, f"d{name}")


GRADCHECK_CASES = [  # small, since gradcheck builds the whole Jacobian column by column
    ((2,), 3, 3, 2, 2, "causal", None),
    ((2,), 3, 4, 3, 2, (2, 1, 4), None),           # key padding
    ((2,), 3, 4, 2, 3, (2, 3, 4), 0.37),           # fully masked row, custom scale
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=["causal", "padding", "full-mask"])
def test_attention_gradcheck(case):
    q, k, v, mask, scale = _make_attention_case(case, seed=11)
    inputs = tuple(x.requires_grad_() for x in (q, k, v))

    def both_outputs(q, k, v):
        return ops.attention(q, k, v, mask, scale)

    assert torch.autograd.gradcheck(both_outputs, inputs, eps=1e-6, atol=1e-8)


def test_attention_fp32_matches_sdpa():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (_randn(gen, 2, 3, 9, 8, dtype=torch.float32) for _ in range(3))
    mask = torch.rand(2, 1, 9, 9, generator=gen) > 0.5
    mask[0, 0, 3] = False                                    # one fully masked query row
    has_key = mask.any(-1).expand(2, 3, 9)                   # (B, H, T): rows with a key to attend to
    for scale in (None, 0.2):
        out, _ = ops.attention(q, k, v, mask, scale)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        assert_same(out[has_key], ref[has_key], "out vs SDPA", atol=1e-5)
    # gradients where every row has a key: raw SDPA's fully masked rows are build-dependent (zeros
    # on torch 2.13's CPU kernel, NaN on older builds and some CUDA kernels), so they are left out here
    causal = torch.ones(9, 9, dtype=torch.bool).tril()
    g = _randn(gen, 2, 3, 9, 8, dtype=torch.float32)
    (_, grads) = _grads(lambda *x: ops.attention(*x, causal)[0], (q, k, v), (g,))
    (_, ref_grads) = _grads(lambda *x: F.scaled_dot_product_attention(*x, attn_mask=causal),
                            (q, k, v), (g,))
    for name, a, b in zip("qkv", grads, ref_grads, strict=True):
        assert_same(a, b, f"d{name} vs SDPA", atol=1e-4)


# --- softmax -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,dim,mask_shape", [
    ((6,), -1, None), ((3, 5), 0, (3, 1)), ((2, 3, 4), 1, (3, 4)), ((2, 3, 4), -1, (2, 1, 4)),
])
def test_softmax_matches_reference(shape, dim, mask_shape):
    gen = torch.Generator().manual_seed(0)
    x, g = 3 * _randn(gen, *shape), _randn(gen, *shape)
    mask = None if mask_shape is None else torch.rand(mask_shape, generator=gen) > 0.4
    (p,), (dx,) = _grads(lambda x: ops.softmax(x, dim, mask), (x,), (g,))
    (ref_p,), (ref_dx,) = _grads(lambda x: functional.masked_softmax(x, mask, dim), (x,), (g,))
    assert_same(p, ref_p, "p")
    assert_same(dx, ref_dx, "dx")
    if mask is not None:
        assert (dx.masked_select(~mask.expand(shape)) == 0).all()
    assert torch.autograd.gradcheck(lambda x: ops.softmax(x, dim, mask), (x.requires_grad_(),))


# --- pooling, read-out and loss -----------------------------------------------------------------

@pytest.mark.parametrize("lead,mask_shape", [((), None), ((3,), (3, 6)), ((2, 3), (3, 6))])
@pytest.mark.parametrize("alpha_grad", [False, True])
def test_attention_pool_matches_reference(lead, mask_shape, alpha_grad):
    gen = torch.Generator().manual_seed(4)
    e, w_a = _randn(gen, *lead, 6, 4), _randn(gen, 4)
    mask = None if mask_shape is None else torch.rand(mask_shape, generator=gen) > 0.4
    if mask is not None:
        mask[0] = False                                     # one fully masked sequence
    upstream = (_randn(gen, *lead, 4), _randn(gen, *lead, 6) if alpha_grad else None)
    (c, alpha), grads = _grads(lambda e, w: ops.attention_pool(e, w, mask), (e, w_a), upstream)
    (rc, ralpha), rgrads = _grads(lambda e, w: functional.attention_pool(e, w, mask), (e, w_a),
                                  upstream)
    assert_same(c, rc, "context")
    assert_same(alpha, ralpha, "alpha")
    assert_same(grads[0], rgrads[0], "de")
    assert_same(grads[1], rgrads[1], "dw_a")
    assert torch.autograd.gradcheck(lambda e, w: ops.attention_pool(e, w, mask),
                                    (e.requires_grad_(), w_a.requires_grad_()))


def test_readout_and_mse_match_autograd():
    gen = torch.Generator().manual_seed(5)
    c, u, v, target = _randn(gen, 3, 2, 4), _randn(gen, 5, 4), _randn(gen, 5), _randn(gen, 3, 2)
    g = _randn(gen, 3, 2)
    (y,), grads = _grads(ops.pooled_readout, (c, u, v), (g,))
    (ry,), rgrads = _grads(lambda c, u, v: (c @ u.T) @ v, (c, u, v), (g,))
    assert_same(y, ry, "y")
    for name, a, b in zip(["dc", "dU", "dv"], grads, rgrads, strict=True):
        assert_same(a, b, name)
    gl = _randn(gen, 1).squeeze()
    (_, lgrads), (_, rlgrads) = (_grads(fn, (y, target), (gl,)) for fn in
                                 (ops.mse_loss, lambda a, b: F.mse_loss(a, b)))
    for name, a, b in zip(["dpred", "dtarget"], lgrads, rlgrads, strict=True):
        assert_same(a, b, name)
    assert torch.autograd.gradcheck(ops.pooled_readout,
                                    tuple(x.requires_grad_() for x in (c, u, v)))


def test_pooling_model_end_to_end_matches_autograd():
    """The lesson-02 model: e -> pool -> read-out -> MSE, every parameter's gradient by hand."""
    gen = torch.Generator().manual_seed(6)
    e, w_a, u, v = _randn(gen, 8, 5, 4), _randn(gen, 4), _randn(gen, 3, 4), _randn(gen, 3)
    target = _randn(gen, 8)
    mask = torch.rand(8, 5, generator=gen) > 0.2

    def model(m, e, w_a, u, v):
        c, _ = m.attention_pool(e, w_a, mask)
        if m is ops:
            return ops.mse_loss(ops.pooled_readout(c, u, v), target)
        return F.mse_loss((c @ u.T) @ v, target)

    g = _randn(gen, 1).squeeze()
    (_, grads), (_, rgrads) = (_grads(lambda *p, m=m: model(m, *p), (e, w_a, u, v), (g,))
                               for m in (ops, functional))
    for name, a, b in zip(["de", "dw_a", "dU", "dv"], grads, rgrads, strict=True):
        assert_same(a, b, name)


def test_softmax_of_an_all_minus_inf_row_is_zero_like_the_reference():
    x = torch.tensor([[0.5, -1.0, 2.0], [float("-inf")] * 3], dtype=F64)
    g = torch.tensor([[1.0, -2.0, 0.5], [10.0, -10.0, 3.0]], dtype=F64)
    (p,), (dx,) = _grads(ops.softmax, (x,), (g,))
    (ref_p,), (ref_dx,) = _grads(functional.masked_softmax, (x,), (g,))
    assert_same(p, ref_p, "p")
    assert_same(dx, ref_dx, "dx")
    assert (p[1] == 0).all() and (dx[1] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_ops_run_in_float32_under_autocast(dtype):
    """Under autocast the hand-backward ops compute in float32 (as autocast does for softmax), so
    forward and backward never mix dtypes; results match the float32 reference."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=gen, requires_grad=True) for _ in range(3))
    upstream = torch.randn(2, 3, 5, 8, generator=gen)
    with torch.autocast("cpu", dtype=dtype):
        out, weights = ops.attention(q, k, v)
        probs = ops.softmax(q)
    assert out.dtype == weights.dtype == probs.dtype == torch.float32
    (out * upstream).sum().backward()
    ref_q, ref_k, ref_v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    ref_out, _ = functional.attention(ref_q, ref_k, ref_v)
    (ref_out * upstream).sum().backward()
    torch.testing.assert_close(out, ref_out)
    for got, want in ((q.grad, ref_q.grad), (k.grad, ref_k.grad), (v.grad, ref_v.grad)):
        torch.testing.assert_close(got, want)
