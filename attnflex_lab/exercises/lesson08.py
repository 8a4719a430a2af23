"""Lesson 08 exercises: the switch cost of an accuracy curve, the attention shift (Jensen–Shannon
divergence in bits) between two attention distributions, and the gradient that moves dimensional
attention (a derivation: autograd is off in its check).

The model answers use plain torch so ``show_solution`` prints them for the learner; they compute the
same numbers as ``attnflex_lab.elasticity.metrics`` (the tests check that), which the checks switch off.
"""

import torch
import torch.nn.functional as F

from . import Exercise, register

# --- 08.switch_cost -----------------------------------------------------------------------------


def switch_cost(acc: torch.Tensor, switch_step: int, window: int) -> torch.Tensor:
    """mean(acc[s − w : s]) − mean(acc[s : s + w]) for a 1-D accuracy curve; returns a 0-dim tensor."""
    before = acc[switch_step - window:switch_step].mean()   # the last w steps under the old rule
    after = acc[switch_step:switch_step + window].mean()    # the first w steps under the new rule
    return before - after


def _curve_inputs(gen: torch.Generator):
    steps = int(torch.randint(30, 80, (1,), generator=gen))
    window = int(torch.randint(2, 8, (1,), generator=gen))
    switch = int(torch.randint(window, steps - window, (1,), generator=gen))
    acc = torch.rand(steps, generator=gen, dtype=torch.float64)   # (steps,)
    return acc, switch, window


register(Exercise(
    id="08.switch_cost",
    prompt="Write switch_cost(acc, switch_step, window): the mean accuracy over the `window` steps "
           "before the switch minus the mean over the first `window` steps after it (0-dim tensor).",
    solution=switch_cost,
    make_inputs=_curve_inputs,
    hint="the step at switch_step is already under the new rule: 'before' is acc[s-w:s] and 'after' "
         "is acc[s:s+w]; a sign flip means you subtracted the other way round.",
    guards=("attnflex_lab.elasticity.metrics:switch_cost",),
))

# --- 08.attention_shift -------------------------------------------------------------------------


def attention_shift(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean over rows of JS(p, q) = H((p+q)/2) − (H(p) + H(q))/2 in bits; p, q (B, K) rows sum to 1."""
    def entropy_bits(x):                                        # (B, K) -> (B,), with 0 log 0 = 0
        return -torch.where(x > 0, x * torch.log2(x), torch.zeros_like(x)).sum(-1)

    m = (p + q) / 2                                             # (B, K) the mixture
    return (entropy_bits(m) - (entropy_bits(p) + entropy_bits(q)) / 2).mean()


def _dist_inputs(gen: torch.Generator):
    rows, k = int(torch.randint(2, 9, (1,), generator=gen)), int(torch.randint(2, 7, (1,), generator=gen))
    p = torch.softmax(3 * torch.randn(rows, k, generator=gen, dtype=torch.float64), -1)  # (B, K)
    q = torch.softmax(3 * torch.randn(rows, k, generator=gen, dtype=torch.float64), -1)  # (B, K)
    p[0] = 0.0
    p[0, 0] = 1.0       # one one-hot row: 0 log 0 must count as 0, not NaN
    return p, q


register(Exercise(
    id="08.attention_shift",
    prompt="Write attention_shift(p, q): the Jensen–Shannon divergence in bits between each row of "
           "p and q (B, K), averaged over rows (0-dim tensor, between 0 and 1).",
    solution=attention_shift,
    make_inputs=_dist_inputs,
    hint="JS = H(m) − (H(p) + H(q))/2 with m = (p + q)/2 and H in bits (log2, not the natural log); "
         "treat 0·log 0 as 0 (torch.where, or xlogy), or a one-hot row gives NaN.",
    guards=("attnflex_lab.elasticity.metrics:attention_shift",),
))

# --- 08.gate_gradient: derive it ------------------------------------------------------------------


def gate_gradient(cards: torch.Tensor, n_values: int, gate: torch.Tensor, tau: float,
                  grad_features: torch.Tensor) -> torch.Tensor:
    """∂ℒ/∂g for the dimension-attention gate: x[n, c, d, :] = D α_d onehot(v_ncd), α = softmax(g / τ).

    cards (N, 2, D) values, gate g (D,), grad_features G = ∂ℒ/∂x (N, 2, D, V) -> (D,).
    """
    alpha = torch.softmax(gate / tau, dim=-1)                                   # (D,)
    onehot = F.one_hot(cards, n_values).to(grad_features.dtype)                 # (N, 2, D, V)
    d_alpha = len(alpha) * (grad_features * onehot).sum(dim=(0, 1, 3))          # ∂ℒ/∂α (D,)
    return alpha * (d_alpha - (alpha * d_alpha).sum()) / tau                    # softmax's Jacobian, then 1/τ


def _gate_inputs(gen: torch.Generator):
    n, dims, values = 6, 3, 5
    cards = torch.randint(0, values, (n, 2, dims), generator=gen)               # (N, 2, D)
    gate = 2 * torch.randn(dims, generator=gen, dtype=torch.float64)           # (D,): attention not uniform
    tau = float(0.5 + torch.rand(1, generator=gen))                             # τ ≠ 1, so a lost 1/τ shows
    grad_features = torch.randn(n, 2, dims, values, generator=gen, dtype=torch.float64)  # (N, 2, D, V)
    return cards, values, gate, tau, grad_features


register(Exercise(
    id="08.gate_gradient",
    prompt="Derive and write gate_gradient(cards, n_values, gate, tau, grad_features): the gradient of a "
           "loss with respect to the dimension-attention gate g (D,), given G = ∂ℒ/∂x (N, 2, D, V) for the "
           "gated input x[n, c, d, :] = D·α_d·onehot(card value), α = softmax(g / τ). Autograd is off.",
    solution=gate_gradient,
    make_inputs=_gate_inputs,
    hint="two steps: ∂ℒ/∂α_d = D Σ G[n, c, d, v] over the entries the one-hot picks, then through the "
         "softmax: ∂ℒ/∂g = α ⊙ (∂ℒ/∂α − ⟨α, ∂ℒ/∂α⟩) / τ.",
    hints=("x depends on g only through α: find ∂ℒ/∂α first, one number per dimension.",
           "∂x[n, c, d, v]/∂α_d = D·onehot[n, c, d, v], so ∂ℒ/∂α_d = D Σ_{n, c, v} G·onehot.",
           "softmax's Jacobian: ∂α_i/∂z_j = α_i(δ_ij − α_j), with z = g / τ, so a factor 1/τ comes last; "
           "the −α_j cross terms are why raising one dimension's attention lowers the others'."),
    no_autograd=True,
))
