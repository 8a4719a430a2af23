"""Lesson 12's derivation exercise: IG in closed form for a quadratic score. The model answer passes
and satisfies completeness; the slips a learner makes deriving it are refused with the hint."""

import pytest
import torch

from attnflex_lab.exercises import ExerciseError, check, get
from attnflex_lab.exercises.lesson12 import quadratic_score


def _symmetric_slip(A, b, x, base):
    return (x - base) * (((x + base) / 2) @ (2 * A).T + b)     # ∇(xᵀAx) taken as 2Ax: A is not symmetric


def _gradient_at_x(A, b, x, base):
    return (x - base) * (x @ (A + A.T).T + b)                  # gradient × (x − x̄): the path never averaged


def _forgets_the_difference(A, b, x, base):
    return x * (((x + base) / 2) @ (A + A.T).T + b)            # × x, right only for a zero baseline


@pytest.mark.parametrize("wrong", [_symmetric_slip, _gradient_at_x, _forgets_the_difference])
def test_a_slip_in_the_derivation_is_refused_with_the_hint(wrong):
    with pytest.raises(ExerciseError, match=r"12.ig_quadratic: not yet right[\s\S]*entries differ[\s\S]*Hint"):
        check("12.ig_quadratic", wrong)


def test_the_model_answer_passes_and_is_complete():
    """Completeness: Σ_i IG_i = f(x) − f(x̄) exactly, which is what makes it a closed form."""
    ex = get("12.ig_quadratic")
    assert check("12.ig_quadratic", ex.solution).status == "correct"
    A, b, x, base = ex.make_inputs(torch.Generator().manual_seed(1))
    gap = quadratic_score(A, b, x) - quadratic_score(A, b, base)                 # (B,)
    torch.testing.assert_close(ex.solution(A, b, x, base).sum(-1), gap, atol=1e-12, rtol=1e-12)


def test_a_numerical_integral_with_autograd_is_refused():
    """Autograd is off in this check: integrating ∇f numerically is not the derivation asked for."""
    def by_autograd(A, b, x, base):
        z = ((x + base) / 2).clone().requires_grad_()
        (grad,) = torch.autograd.grad(quadratic_score(A, b, z).sum(), z)
        return (x - base) * grad
    with pytest.raises(ExerciseError, match="autograd is off"):
        check("12.ig_quadratic", by_autograd)
