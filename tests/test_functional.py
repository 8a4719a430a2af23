"""The reference math (functional) against written-out formulas, and bad input for every op."""

import math

import pytest
import torch

from attnflex_lab import functional, ops

F64 = torch.float64


def _randn(gen, *shape, dtype=F64):
    return torch.randn(*shape, generator=gen, dtype=dtype)


# --- values ------------------------------------------------------------------------------------

def test_masked_softmax_without_mask_is_softmax():
    x = _randn(torch.Generator().manual_seed(0), 3, 4, 5) * 10
    for dim in (0, 1, -1):
        torch.testing.assert_close(functional.masked_softmax(x, dim=dim), x.softmax(dim))


def test_masked_softmax_masks_and_empty_rows():
    gen = torch.Generator().manual_seed(1)
    x = _randn(gen, 4, 6, dtype=torch.float32).requires_grad_()
    mask = torch.rand(4, 6, generator=gen) > 0.5
    mask[2] = False
    p = functional.masked_softmax(x, mask)
    assert (p[~mask] == 0).all()
    assert (p[2] == 0).all()
    rows = mask.any(-1)
    torch.testing.assert_close(p[rows].sum(-1), torch.ones(int(rows.sum())))
    # kept entries are the softmax over the kept entries alone
    row0 = x[0].detach()[mask[0]]
    torch.testing.assert_close(p[0][mask[0]], row0.softmax(-1))
    # a huge upstream gradient must not overflow into inf/NaN through the empty row
    (p * 1e30 * _randn(gen, 4, 6, dtype=torch.float32)).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[2] == 0).all()


def test_masked_softmax_of_pre_masked_scores_has_finite_gradients():
    """A row of -inf scores (masked by the caller, no mask given) gives zeros and zero gradient.

    The first version divided by total.clamp_min(tiny): fine forward, but its backward scaled the
    upstream gradient by 1/tiny, which overflowed to inf, and inf · 0 gave NaN here.
    """
    x = torch.tensor([[1.0, 2.0, 3.0], [float("-inf")] * 3]).requires_grad_()
    p = functional.masked_softmax(x)
    (p * torch.tensor([[1.0, 2.0, 3.0], [10.0, 10.0, 10.0]])).sum().backward()
    assert (p[1] == 0).all()
    assert torch.isfinite(x.grad).all() and (x.grad[1] == 0).all()


def test_score_functions_match_the_formulas():
    gen = torch.Generator().manual_seed(2)
    q, k = _randn(gen, 2, 3, 4), _randn(gen, 2, 5, 4)
    dot = torch.einsum("btd,bsd->bts", q, k)
    torch.testing.assert_close(functional.dot_scores(q, k), dot)
    torch.testing.assert_close(functional.scaled_dot_scores(q, k), dot / 2.0)  # 1/√4
    torch.testing.assert_close(functional.scaled_dot_scores(q, k, scale=0.3), dot * 0.3)
    w = _randn(gen, 4, 6)
    k6 = _randn(gen, 2, 5, 6)
    torch.testing.assert_close(functional.general_scores(q, k6, w),
                               torch.einsum("btd,de,bse->bts", q, w, k6))
    w_q, w_k, v_a = _randn(gen, 7, 4), _randn(gen, 7, 6), _randn(gen, 7)
    expected = torch.empty(2, 3, 5, dtype=F64)
    for b in range(2):
        for t in range(3):
            for s in range(5):
                expected[b, t, s] = v_a @ torch.tanh(w_q @ q[b, t] + w_k @ k6[b, s])
    torch.testing.assert_close(functional.additive_scores(q, k6, w_q, w_k, v_a), expected)


def test_attention_matches_the_formula():
    gen = torch.Generator().manual_seed(3)
    q, k, v = _randn(gen, 2, 3, 4), _randn(gen, 2, 5, 4), _randn(gen, 2, 5, 6)
    out, weights = functional.attention(q, k, v)
    expected_w = (q @ k.transpose(-2, -1) / math.sqrt(4)).softmax(-1)
    torch.testing.assert_close(weights, expected_w)
    torch.testing.assert_close(out, expected_w @ v)
    assert functional.default_scale(q) == 0.5


def test_attention_pool_matches_the_formula():
    gen = torch.Generator().manual_seed(4)
    e, w_a = _randn(gen, 3, 5, 4), _randn(gen, 4)
    context, alpha = functional.attention_pool(e, w_a)
    for n in range(3):
        a = torch.stack([e[n, t] @ w_a for t in range(5)]).softmax(0)
        torch.testing.assert_close(alpha[n], a)
        torch.testing.assert_close(context[n], sum(a[t] * e[n, t] for t in range(5)))


def test_nadaraya_watson_small_bandwidth_is_nearest_neighbour():
    x_keys = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=F64)
    y = torch.tensor([10.0, 20.0, 30.0, 40.0], dtype=F64)
    y_hat, weights = functional.nadaraya_watson(torch.tensor([0.1, 2.9], dtype=F64), x_keys, y,
                                                bandwidth=0.05)
    torch.testing.assert_close(y_hat, torch.tensor([10.0, 40.0], dtype=F64))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, dtype=F64))
    wide, _ = functional.nadaraya_watson(torch.tensor([0.1], dtype=F64), x_keys, y, bandwidth=1e3)
    # a huge bandwidth weighs every key (almost) equally: the plain mean
    torch.testing.assert_close(wide, y.mean().reshape(1), atol=1e-3, rtol=0)


# --- bad input: a clear error that names the shapes, dtypes or devices -------------------------

ATTENTION_FNS = [functional.attention, ops.attention]
IDS = ["functional", "ops"]


def _qkv(dtype=torch.float32, t=3, s=5, d=4, dv=6):
    return torch.randn(2, t, d, dtype=dtype), torch.randn(2, s, d, dtype=dtype), \
        torch.randn(2, s, dv, dtype=dtype)


@pytest.mark.parametrize("attention", ATTENTION_FNS, ids=IDS)
def test_mismatched_width_names_the_shapes(attention):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"share the last dim D.*\(2, 3, 4\).*\(2, 5, 7\)"):
        attention(q, torch.randn(2, 5, 7), v)


@pytest.mark.parametrize("attention", ATTENTION_FNS, ids=IDS)
def test_mismatched_keys_and_leading_dims(attention):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"number of keys S.*\(2, 5, 4\).*\(2, 4, 6\)"):
        attention(q, k, v[:, :4])
    with pytest.raises(ValueError, match=r"leading.*\(1, 3, 4\)"):
        attention(q[:1], k, v)
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., T, D\).*got shape \(4,\)"):
        attention(q[0, 0], k, v)


@pytest.mark.parametrize("attention", ATTENTION_FNS, ids=IDS)
def test_wrong_mask_shape_names_both_shapes(attention):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) does not broadcast.*\(2, 3, 5\)"):
        attention(q, k, v, torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(1, 2, 3, 5\)"):  # would enlarge output
        attention(q, k, v, torch.ones(1, 2, 3, 5, dtype=torch.bool))


@pytest.mark.parametrize("attention", ATTENTION_FNS, ids=IDS)
def test_non_bool_mask_names_its_dtype(attention):
    q, k, v = _qkv()
    with pytest.raises(TypeError, match=r"mask must be a bool tensor.*torch\.int64"):
        attention(q, k, v, torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(TypeError, match=r"mask must be a bool tensor.*torch\.float32"):
        attention(q, k, v, torch.ones(3, 5))


@pytest.mark.parametrize("attention", ATTENTION_FNS, ids=IDS)
def test_integer_and_mixed_dtypes(attention):
    q, k, v = _qkv()
    with pytest.raises(TypeError, match=r"q must be a floating-point tensor, got dtype .*int64"):
        attention(q.long(), k, v)
    with pytest.raises(TypeError, match=r"q and v must share a dtype.*float32.*float64"):
        attention(q, k, v.double())


@pytest.mark.parametrize("attention", ATTENTION_FNS, ids=IDS)
def test_devices_must_match(attention):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"q and k must be on one device, got cpu and meta"):
        attention(q, k.to("meta"), v)
    with pytest.raises(ValueError, match=r"mask is on meta but .* are on cpu"):
        attention(q, k, v, torch.ones(3, 5, dtype=torch.bool, device="meta"))


@pytest.mark.parametrize("attention", ATTENTION_FNS, ids=IDS)
def test_bad_scale_and_non_tensors(attention):
    q, k, v = _qkv()
    with pytest.raises(TypeError, match=r"scale must be a real number.*Tensor"):
        attention(q, k, v, scale=torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"scale must be finite, got nan"):
        attention(q, k, v, scale=float("nan"))
    with pytest.raises(TypeError, match=r"q must be a torch\.Tensor, got list"):
        attention([[1.0]], k, v)


@pytest.mark.parametrize("pool", [functional.attention_pool, ops.attention_pool], ids=IDS)
def test_pool_bad_input(pool):
    e = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"w_a must be a vector of shape \(d,\) = \(4,\).*5, 4"):
        pool(e, torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"mask of shape \(5, 2\) does not broadcast.*\(2, 5\)"):
        pool(e, torch.randn(4), torch.ones(5, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"e must be a floating-point tensor.*int64"):
        pool(e.long(), torch.randn(4))


def test_ops_only_bad_input():
    with pytest.raises(ValueError, match=r"U \(h, d\) and v \(h,\).*U \(3, 5\)"):
        ops.pooled_readout(torch.randn(2, 4), torch.randn(3, 5), torch.randn(3))
    with pytest.raises(ValueError, match=r"pred \(3,\) and target \(3, 1\)"):
        ops.mse_loss(torch.randn(3), torch.randn(3, 1))
    with pytest.raises(ValueError, match=r"mask of shape \(4,\) does not broadcast.*\(2, 3\)"):
        ops.softmax(torch.randn(2, 3), mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor.*int64"):
        ops.softmax(torch.ones(2, 3, dtype=torch.long))


def test_other_functional_bad_input():
    q, k = torch.randn(1, 3, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"share leading dims.*\(1, 3, 4\).*\(2, 5, 4\)"):
        functional.general_scores(q, k, torch.randn(4, 4))
    with pytest.raises(ValueError, match=r"weight must have shape \(Dq, Dk\) = \(4, 4\)"):
        functional.general_scores(q, k[:1], torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"additive scores need v_a \(A,\)"):
        functional.additive_scores(q, k, torch.randn(7, 4), torch.randn(7, 4), torch.randn(6))
    with pytest.raises(ValueError, match=r"need x_query \(T,\).*\(\)"):
        functional.nadaraya_watson(torch.randn(3), torch.randn(4), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., D\) with D >= 1, got shape \(\)"):
        functional.default_scale(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"bandwidth must be positive, got 0"):
        functional.nadaraya_watson(torch.randn(3), torch.randn(4), torch.randn(4), bandwidth=0)
