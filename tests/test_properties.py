"""Properties of attention that hold for any input (hypothesis), for functional and ops alike."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflex_lab import functional, ops

F64 = torch.float64
MODULES = pytest.mark.parametrize("module", [functional, ops], ids=["functional", "ops"])
FEW = settings(max_examples=20, deadline=None)  # modest: the whole file runs in a few seconds


@st.composite
def attention_inputs(draw):
    """Random q, k, v and a bool mask (maybe with fully masked rows), built from a drawn seed."""
    lead = draw(st.sampled_from([(), (2,), (2, 3)]))
    t, s = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    d, dv = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    spread = draw(st.sampled_from([0.1, 1.0, 5.0]))       # sharp and flat weights
    q = spread * torch.randn(*lead, t, d, generator=gen, dtype=F64)
    k = torch.randn(*lead, s, d, generator=gen, dtype=F64)
    v = torch.randn(*lead, s, dv, generator=gen, dtype=F64)
    mask_shape = draw(st.sampled_from(["none", "full", "keys"]))
    if mask_shape == "none":
        mask = None
    elif mask_shape == "full":
        mask = torch.rand(*lead, t, s, generator=gen) > draw(st.sampled_from([0.2, 0.6, 0.9]))
    else:  # one mask per key, broadcast over queries
        mask = torch.rand(*lead, 1, s, generator=gen) > 0.5
    return q, k, v, mask


@MODULES
@FEW
@given(inputs=attention_inputs())
def test_weights_sum_to_one_or_zero_and_masked_weights_are_zero(module, inputs):
    q, k, v, mask = inputs
    out, weights = module.attention(q, k, v, mask)
    assert weights.shape == (*q.shape[:-1], k.shape[-2])
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (weights >= 0).all()
    has_key = torch.ones(weights.shape[:-1], dtype=torch.bool) if mask is None else \
        mask.expand(weights.shape).any(-1)
    torch.testing.assert_close(weights.sum(-1), has_key.to(F64))
    if mask is not None:
        assert (weights.masked_select(~mask.expand(weights.shape)) == 0).all()


@MODULES
@FEW
@given(inputs=attention_inputs(), shift=st.floats(-50, 50))
def test_adding_a_constant_to_the_scores_changes_nothing(module, inputs, shift):
    q, k, v, mask = inputs
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(*q.shape[:-1], k.shape[-2], generator=gen, dtype=F64)
    softmax = ops.softmax if module is ops else functional.masked_softmax
    torch.testing.assert_close(softmax(scores + shift, mask=mask), softmax(scores, mask=mask))
    # the same shift inside attention: adding one vector u to every key adds q·u to a whole row
    u = torch.randn(k.shape[-1], generator=gen, dtype=F64)
    torch.testing.assert_close(module.attention(q, k + u, v, mask), module.attention(q, k, v, mask))


@MODULES
@FEW
@given(inputs=attention_inputs(), perm_seed=st.integers(0, 1000))
def test_permuting_keys_and_values_together_leaves_the_output_unchanged(module, inputs, perm_seed):
    q, k, v, mask = inputs
    perm = torch.randperm(k.shape[-2], generator=torch.Generator().manual_seed(perm_seed))
    out, weights = module.attention(q, k, v, mask)
    mask_p = None if mask is None else mask[..., perm]
    out_p, weights_p = module.attention(q, k[..., perm, :], v[..., perm, :], mask_p)
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(weights_p, weights[..., perm])  # the weights move with the keys


@FEW
@given(inputs=attention_inputs())
def test_ops_and_functional_agree_on_values_and_gradients(inputs):
    q, k, v, mask = inputs
    gen = torch.Generator().manual_seed(1)
    g_out = torch.randn(*q.shape[:-1], v.shape[-1], generator=gen, dtype=F64)
    g_w = torch.randn(*q.shape[:-1], k.shape[-2], generator=gen, dtype=F64)
    results = []
    for module in (functional, ops):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        out, weights = module.attention(*leaves, mask)
        grads = torch.autograd.grad((out * g_out).sum() + (weights * g_w).sum(), leaves)
        results.append((out, weights, *grads))
    for ref, ours in zip(*results, strict=True):
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
