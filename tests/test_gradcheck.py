"""The gradient checker: it must catch a wrong backward and pass a right one, and read well."""

import pytest
import torch

from attnflex_lab import functional, ops
from attnflex_lab.gradcheck import check_gradients, numerical_gradient

F64 = torch.float64


class ForgetsTheProbabilities(torch.autograd.Function):
    """A wrong softmax backward: dx = g − ⟨g, p⟩ (drops the factor p). Zero when g = 1."""

    @staticmethod
    def forward(ctx, x):
        probs = x.softmax(-1)
        ctx.save_for_backward(probs)
        return probs

    @staticmethod
    def backward(ctx, grad_probs):
        (probs,) = ctx.saved_tensors
        return grad_probs - (grad_probs * probs).sum(-1, keepdim=True)


def _x():
    return torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=F64)


def test_numerical_gradient_of_a_known_function():
    x = _x()
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    (grad,) = numerical_gradient(lambda x: x.pow(3), [x], [g])
    torch.testing.assert_close(grad, 3 * x.pow(2) * g, atol=1e-7, rtol=1e-6)


def test_a_wrong_backward_fails_with_a_random_upstream_gradient():
    report = check_gradients(ForgetsTheProbabilities.apply, _x(), names=["x"])
    assert not report.ok and not report
    assert report.rows[0].max_abs_error > 0.1
    assert report.rows[0].max_rel_error > 0.1


def test_the_sum_trap_lets_the_same_wrong_backward_through():
    """With g = 1 (i.e. softmax(x).sum()) both gradients are zero: the check proves nothing."""
    report = check_gradients(ForgetsTheProbabilities.apply, _x(), upstream=torch.ones(3, 5))
    assert report.ok
    assert report.rows[0].max_abs_error < 1e-8


@pytest.mark.parametrize("seed", [0, 1])
def test_a_right_backward_passes(seed):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = torch.randn(2, 3, 4, generator=gen), torch.randn(2, 5, 4, generator=gen), \
        torch.randn(2, 5, 2, generator=gen)
    mask = torch.rand(3, 5, generator=gen) > 0.3
    mask[1] = False
    report = check_gradients(lambda q, k, v: ops.attention(q, k, v, mask), q, k, v, seed=seed,
                             names=["q", "k", "v"])
    assert report.ok, str(report)
    assert [r.name for r in report.rows] == ["q", "k", "v"]
    assert all(r.max_abs_error < 1e-7 for r in report.rows)
    assert [r.shape for r in report.rows] == [(2, 3, 4), (2, 5, 4), (2, 5, 2)]


def test_non_tensor_and_bool_inputs_are_passed_through():
    e, w_a = torch.randn(3, 5, 4, dtype=F64), torch.randn(4, dtype=F64)   # (N, T, d), (d,)
    mask = torch.tensor([[True, True, False, True, True]] * 3)            # (N, T)
    report = check_gradients(functional.attention_pool, e, w_a, mask)
    assert report.ok and len(report.rows) == 2    # e and w_a, not the mask


def test_renderings_list_every_input():
    report = check_gradients(ForgetsTheProbabilities.apply, _x(), names=["logits"])
    text, html = str(report), report._repr_html_()
    assert "MISMATCH" in text and "logits" in text and "(3, 5)" in text and "NO" in text
    assert "<table>" in html and "<td>logits</td>" in html and "MISMATCH" in html
    assert f"{report.rows[0].max_abs_error:.3e}" in text
    assert f"{report.rows[0].max_abs_error:.3e}" in html
    good = check_gradients(lambda q, k, v: ops.attention(q, k, v), *(torch.randn(2, 3)
                           for _ in range(3)), names=["q", "k", "v"])
    assert "OK" in str(good) and str(good).count("yes") == 3
    assert good._repr_html_().count("<tr>") == 4    # header + one row per input


def test_bad_arguments():
    with pytest.raises(ValueError, match="2 names for 1 inputs"):
        check_gradients(torch.sin, _x(), names=["a", "b"])
    with pytest.raises(ValueError, match=r"upstream gradient 0 has shape \(2,\).*\(3, 5\)"):
        check_gradients(torch.sin, _x(), upstream=torch.ones(2))
    with pytest.raises(ValueError, match=r"upstream gradient 0 has shape \(5,\).*\(3, 5\)"):
        numerical_gradient(torch.sin, [_x()], [torch.ones(5)])  # would broadcast silently
    with pytest.raises(ValueError, match="returned 1 outputs but 2 upstream"):
        numerical_gradient(torch.sin, [_x()], [torch.ones(3, 5), torch.ones(3, 5)])
    with pytest.raises(ValueError, match="at least one floating-point tensor"):
        check_gradients(lambda m: m.float(), torch.ones(3, dtype=torch.bool))
