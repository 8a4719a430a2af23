"""The three attention backends agree (values and gradients, fp32, random upstream gradients) under
every kind of mask, and the sdpa backend gives zeros and zero gradients for queries with no allowed
key, on every build.

torch 2.13 on CPU returns zeros for a fully masked row, but older builds (the lower bound is torch
2.3) and some CUDA kernels return NaN there, and the NaN then reaches every gradient of K and V.
``_OldBuildSDPA`` reproduces that behaviour so the test fails on code that trusts the kernel
(planted: ``_sdpa`` handing the mask straight to SDPA), and on code that only zeroes the output
rows afterwards (planted: ``masked_fill`` without the dummy key: the backward is still NaN).
"""

import pytest
import torch
import torch.nn.functional as F

from attnflex_lab.modules import BACKENDS, MultiHeadAttention, causal_mask

B, T, C, H = 3, 7, 24, 4
REAL_SDPA = F.scaled_dot_product_attention


class _OldBuildSDPA(torch.autograd.Function):
    """SDPA as older builds behave: NaN rows where no key is allowed; NaN dQ rows, NaN dK and dV."""

    @staticmethod
    def forward(ctx, q, k, v, mask):
        ctx.save_for_backward(q, k, v, mask)
        empty = ~mask.any(dim=-1, keepdim=True)                              # (..., T, 1)
        return REAL_SDPA(q, k, v, attn_mask=mask).masked_fill(empty, float("nan"))

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, mask = ctx.saved_tensors
        with torch.enable_grad():
            inputs = [t.detach().requires_grad_() for t in (q, k, v)]
            out = REAL_SDPA(*inputs, attn_mask=mask)
            dq, dk, dv = torch.autograd.grad(out, inputs, grad_out)
        empty = ~mask.any(dim=-1, keepdim=True)
        if empty.any():  # a NaN row of P spreads into dV = Pᵀ dO and dK = dSᵀ Q for every key
            dq = dq.masked_fill(empty, float("nan"))
            dk, dv = torch.full_like(dk, float("nan")), torch.full_like(dv, float("nan"))
        return dq, dk, dv, None


def _old_build_sdpa(q, k, v, attn_mask=None, **kwargs):
    if attn_mask is None or attn_mask.dtype != torch.bool or kwargs:
        return REAL_SDPA(q, k, v, attn_mask=attn_mask, **kwargs)
    return _OldBuildSDPA.apply(q, k, v, attn_mask.expand(*q.shape[:-1], k.shape[-2]))


def _run(mha, x, mask, causal, upstream):
    mha.zero_grad()
    x = x.clone().requires_grad_()
    out = mha(x, mask, causal=causal)
    (out * upstream).sum().backward()  # random upstream gradient: every output entry counts
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in mha.named_parameters()}


def _key_padding(keep_from, keep_to):
    """(B, 1, 1, S) bool: sequence b may attend to keys keep_from[b] <= j < keep_to[b]."""
    j = torch.arange(T)
    keep = (j >= torch.tensor(keep_from)[:, None]) & (j < torch.tensor(keep_to)[:, None])  # (B, S)
    return keep[:, None, None, :]


def _masks():
    gen = torch.Generator().manual_seed(3)
    random = torch.rand(B, H, T, T, generator=gen) > 0.5
    random[0, 1, 2] = False          # one query row with no key
    random[2, :, 5] = False          # a query with no key in every head
    return {
        "no mask": (None, False),
        "causal": (None, True),
        # right padding, every sequence has a key: no empty row (the plain case still agrees)
        "padding": (_key_padding([0, 0, 0], [7, 4, 2]), False),
        # one sequence entirely padding: all its rows are empty
        "padding, one empty sequence": (_key_padding([0, 0, 0], [7, 0, 3]), False),
        # left padding + causal: the first queries of sequences 1 and 2 see only padding
        "causal + left padding": (_key_padding([0, 2, 5], [7, 7, 7]), True),
        "causal + padding, one empty sequence": (_key_padding([0, 0, 0], [7, 0, 3]), True),
        "random, some rows empty": (random, False),
    }


@pytest.mark.parametrize("old_build", [False, True], ids=["this build", "old build (NaN rows)"])
@pytest.mark.parametrize("case", list(_masks()))
def test_backends_agree_with_and_without_fully_masked_rows(case, old_build, monkeypatch):
    if old_build:
        monkeypatch.setattr(F, "scaled_dot_product_attention", _old_build_sdpa)
    mask, causal = _masks()[case]
    torch.manual_seed(0)
    mha = MultiHeadAttention(C, H, backend="functional")
    x, upstream = torch.randn(B, T, C), torch.randn(B, T, C)
    results = {}
    for backend in BACKENDS:
        mha.backend = backend
        results[backend] = _run(mha, x, mask, causal, upstream)
    ref_out, ref_dx, ref_dparams = results["functional"]
    for backend in ("ops", "sdpa"):
        out, dx, dparams = results[backend]
        torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0, msg=f"{backend} output ({case})")
        torch.testing.assert_close(dx, ref_dx, atol=1e-5, rtol=0, msg=f"{backend} dx ({case})")
        for name, grad in dparams.items():
            torch.testing.assert_close(grad, ref_dparams[name], atol=1e-5, rtol=0,
                                       msg=f"{backend} d{name} ({case})")


@pytest.mark.parametrize("old_build", [False, True], ids=["this build", "old build (NaN rows)"])
def test_sdpa_rows_with_no_key_are_exactly_zero(old_build, monkeypatch):
    """Before the output projection: an empty row's head output is 0, and so is its gradient."""
    if old_build:
        monkeypatch.setattr(F, "scaled_dot_product_attention", _old_build_sdpa)
    captured = {}
    mha = MultiHeadAttention(C, H, backend="sdpa", bias=False)
    mha.proj.register_forward_hook(lambda mod, inputs, out: captured.setdefault("heads", inputs[0]))
    x = torch.randn(B, T, C, requires_grad=True)
    mask = _key_padding([0, 2, 5], [7, 7, 7]) & causal_mask(T)   # (B, 1, T, S)
    empty = ~mask.any(-1)[:, 0]                                    # (B, T)
    assert empty.sum() == 2 + 5                                    # the test has empty rows
    out = mha(x, mask)
    heads = captured["heads"]                                      # (B, T, C) before proj
    assert torch.equal(heads[empty], torch.zeros_like(heads[empty]))
    # zero gradient: nothing flows back from an empty row, not even NaN
    (from_empty,) = torch.autograd.grad((heads[empty] * torch.randn_like(heads[empty])).sum(), x,
                                        retain_graph=True)
    assert torch.equal(from_empty, torch.zeros_like(x))
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(mha.qkv.weight.grad).all()


def test_old_build_simulation_really_gives_nan():
    """The stand-in must misbehave, or the tests above would prove nothing."""
    q, k, v = (torch.randn(1, 1, 3, 4, requires_grad=True) for _ in range(3))
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out = _old_build_sdpa(q, k, v, attn_mask=mask)
    assert out[0, 0, 1].isnan().all() and out[0, 0, [0, 2]].isfinite().all()
    out.nan_to_num().sum().backward()
    assert v.grad.isnan().all()
