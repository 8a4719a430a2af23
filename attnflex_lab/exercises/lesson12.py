"""Lesson 12 exercises: integrated gradients by the midpoint rule, IG in closed form for a quadratic
score (a derivation), and a head's share of the output.

The function to explain is a small random tanh network in float64, so the learner's autograd answer
can be compared with the analytic gradient to 1e-10, and a left (not midpoint) Riemann sum or a
missing (x − x̄) factor shows up as a wrong number. The package's ``explain.integrated_gradients``
(which the lesson uses above the exercises) is switched off in both IG checks; the closed form is
checked with autograd off too, so it has to be derived, not integrated numerically.
"""

import torch

from . import Exercise, register

_F64 = torch.float64


class TanhNet:
    """f(x) = tanh(x W₁) w₂: inputs (B, D) -> one score per example (B,)."""

    def __init__(self, w1: torch.Tensor, w2: torch.Tensor):
        self.w1, self.w2 = w1, w2                    # (D, Hd), (Hd,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w1) @ self.w2     # (B, D) @ (D, Hd) -> (B, Hd) -> (B,)

    def __repr__(self) -> str:
        return f"TanhNet(D={self.w1.shape[0]}, hidden={self.w1.shape[1]})"


def integrated_gradients(f, x: torch.Tensor, baseline: torch.Tensor, steps: int) -> torch.Tensor:
    """(x − x̄) ⊙ mean over α_s = (s + ½)/steps of ∂f/∂x at x̄ + α_s (x − x̄); shape (B, D)."""
    total = torch.zeros_like(x)
    for s in range(steps):
        alpha = (s + 0.5) / steps                               # the midpoint of the s-th interval
        point = (baseline + alpha * (x - baseline)).requires_grad_()
        (grad,) = torch.autograd.grad(f(point).sum(), point)    # (B, D): examples do not mix
        total += grad
    return (x - baseline) * total / steps


def _ig_inputs(gen: torch.Generator):
    D, hidden, B = 5, 7, 3
    f = TanhNet(torch.randn(D, hidden, generator=gen, dtype=_F64),
                torch.randn(hidden, generator=gen, dtype=_F64))
    x = torch.randn(B, D, generator=gen, dtype=_F64)
    baseline = 0.3 * torch.randn(B, D, generator=gen, dtype=_F64)
    return f, x, baseline, int(torch.randint(3, 9, (1,), generator=gen))


register(Exercise(
    id="12.integrated_gradients",
    prompt="Write integrated_gradients(f, x, baseline, steps) -> (B, D): integrated gradients of the "
           "scores f(x) (B,) along the straight path from baseline to x, by the midpoint rule.",
    solution=integrated_gradients,
    make_inputs=_ig_inputs,
    hint="evaluate the gradient at α = (s + ½)/steps for s = 0..steps−1 (midpoints, not s/steps), "
         "average those gradients, then multiply by (x − baseline), not by x.",
    hints=("the path is z(α) = baseline + α (x − baseline); you need ∂f/∂z at `steps` points on it.",
           "take the midpoints α = (s + ½)/steps, s = 0..steps−1 (not s/steps); autograd.grad of "
           "f(z).sum() gives every example's gradient at once, since examples do not mix.",
           "average the gradients over the points, then multiply by (x − baseline), not by x."),
    guards=("attnflex_lab.analysis.explain:integrated_gradients",),
    atol=1e-10, rtol=1e-8,
))

# --- 12.ig_quadratic: derive IG in closed form ------------------------------------------------------


def quadratic_score(A: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """f(x) = xᵀ A x + bᵀ x per example: x (B, D), A (D, D) not symmetric, b (D,) -> (B,)."""
    return ((x @ A) * x).sum(-1) + x @ b                          # (B, D) @ (D, D) -> (B, D) -> (B,)


def ig_quadratic(A: torch.Tensor, b: torch.Tensor, x: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """IG of f(x) = xᵀAx + bᵀx in closed form: ∇f(z) = (A + Aᵀ) z + b is linear in z, so its mean
    over the straight path is its value at the path's midpoint (x + x̄)/2:
    IG = (x − x̄) ⊙ ((A + Aᵀ)(x + x̄)/2 + b). Shape (B, D)."""
    midpoint = (x + baseline) / 2                                 # (B, D)
    mean_grad = midpoint @ (A + A.T).T + b                        # (B, D) @ (D, D) -> (B, D)
    return (x - baseline) * mean_grad


def _quadratic_inputs(gen: torch.Generator):
    B, D = 3, 5
    A = torch.randn(D, D, generator=gen, dtype=_F64)              # not symmetric: (A + Aᵀ) matters
    b = torch.randn(D, generator=gen, dtype=_F64)
    x = torch.randn(B, D, generator=gen, dtype=_F64)
    return A, b, x, 0.5 * torch.randn(B, D, generator=gen, dtype=_F64)


register(Exercise(
    id="12.ig_quadratic",
    prompt="Derive integrated gradients in closed form for f(x) = xᵀAx + bᵀx (A (D, D), not symmetric; "
           "b (D,)) and write ig_quadratic(A, b, x, baseline) -> (B, D), with no autograd and no loop "
           "over steps: the exact integral.",
    solution=ig_quadratic,
    make_inputs=_quadratic_inputs,
    hint="∇(xᵀAx) = (A + Aᵀ)x, not 2Ax (A is not symmetric); the gradient is linear along the path, "
         "so its average over α ∈ [0, 1] is its value at α = ½, i.e. at (x + x̄)/2; then multiply by (x − x̄).",
    hints=("write the gradient ∇f(z) first; A is not symmetric, so ∂(zᵀAz)/∂z is not 2Az.",
           "∇f(z) = (A + Aᵀ) z + b is linear in z, and z(α) = x̄ + α(x − x̄) is linear in α: what is "
           "the mean of a linear function of α over [0, 1]?",
           "IG = (x − x̄) ⊙ ((A + Aᵀ)(x + x̄)/2 + b); check completeness: its entries sum to f(x) − f(x̄)."),
    guards=("attnflex_lab.analysis.explain:integrated_gradients",),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))


def head_contribution(z: torch.Tensor, w_o: torch.Tensor, head: int) -> torch.Tensor:
    """What head ``head`` adds to the layer output: z[..., head, :] (B, T, Dh) times its slice of W_O."""
    d_head = z.shape[-1]
    w_head = w_o[:, head * d_head:(head + 1) * d_head]          # (C, Dh): the head's columns of W_O
    return z[..., head, :] @ w_head.T                           # (B, T, Dh) @ (Dh, C) -> (B, T, C)


def _contribution_inputs(gen: torch.Generator):
    B, T, H, Dh = 2, 4, 3, 5                                    # H ≠ Dh: a mixed-up view fails
    z = torch.randn(B, T, H, Dh, generator=gen, dtype=_F64)
    w_o = torch.randn(H * Dh, H * Dh, generator=gen, dtype=_F64)  # (C, C), like nn.Linear.weight
    return z, w_o, int(torch.randint(0, H, (1,), generator=gen))


register(Exercise(
    id="12.head_contribution",
    prompt="Write head_contribution(z, w_o, head) -> (B, T, C): the output-projection term of one head, "
           "given the per-head outputs z (B, T, H, Dh) and W_O (C, C) stored as nn.Linear.weight.",
    solution=head_contribution,
    make_inputs=_contribution_inputs,
    hint="nn.Linear computes y = x W_Oᵀ, and x is the heads concatenated, so head h meets columns "
         "h·Dh .. (h+1)·Dh of W_O (not rows); the bias belongs to no head.",
    atol=1e-10, rtol=1e-8,
))
