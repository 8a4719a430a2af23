"""The attentional-updating model of card sorting (Bishara et al. 2010), fitted by the likelihood of choices.

Attention a_t is a distribution over the three feature dimensions, a_0 uniform. Key card k (a value,
0..3) matches card_t on the dimensions m_k(r) = 1[card_t[r] = k]. The choice is a power rule:

    P(c_t = k) = (m_k · a_t)^d / Σ_j (m_j · a_t)^d,          d: decision consistency,

mixed with a fixed lapse ε = 1e-3 to uniform, so that a key matching nothing (score 0) is not an
infinitely surprising choice. After the feedback on the chosen key c, with m = m_c:

    reward (right):       s(r) ∝ m(r) · a_t(r)^f,        a_{t+1} = (1 − r) · a_t + r · s
    punishment (wrong):   s(r) ∝ (1 − m(r)) · a_t(r)^f,  a_{t+1} = (1 − p) · a_t + p · s

r and p are the reward and punishment learning rates, f the attentional focus (f → 0: all signalled
dimensions alike; f = 1: in proportion to attention). With r = p = 1 and f = 1 the attention is exactly
the Bayes observer's belief for right/wrong feedback with no switches.

The four parameters θ = (r, p, d, f) are fitted by maximum likelihood of the observed choices,
−log L(θ) = −Σ_t log P(c_t | history; θ), with L-BFGS-B inside bounds (torch computes the gradient),
and each parameter's 95 % interval is read from its *profile likelihood*: the values θ_j for which
2·(min over the others of −log L − the overall minimum) ≤ χ²₁(0.95) = 3.84.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .experiment import single_thread
from .tasks import N_FEATURES, N_VALUES

PARAMS = ("r", "p", "d", "f")
BOUNDS = {"r": (1e-3, 1.0), "p": (1e-3, 1.0), "d": (0.05, 30.0), "f": (0.01, 10.0)}
LAPSE = 1e-3
CHI2_1_95 = 3.841458820694124   # the 0.95 quantile of χ² with one degree of freedom


@dataclass(frozen=True)
class BisharaParams:
    r: float = 0.5   # reward learning rate, in (0, 1]
    p: float = 0.5   # punishment learning rate, in (0, 1]
    d: float = 3.0   # decision consistency (> 0): larger = choices follow attention more strictly
    f: float = 1.0   # attentional focus (> 0)

    def __post_init__(self):
        for name in PARAMS:
            lo, hi = BOUNDS[name]
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must lie in [{lo}, {hi}], got {getattr(self, name)!r}")

    def vector(self) -> np.ndarray:
        return np.array([self.r, self.p, self.d, self.f], dtype=float)


def choice_probs(a: torch.Tensor, card: torch.Tensor, d) -> torch.Tensor:
    """P(c = k) for attention a (…, 3) and card (…, 3) -> (…, 4)."""
    return _power_rule(torch.einsum("...kr,...r->...k", _matches(card), a), d)


def _power_rule(score: torch.Tensor, d) -> torch.Tensor:
    """score (…, 4) -> (1 − ε)·score^d / Σ score^d + ε/4, with 0^d = 0 (computed in logs: d may be large)."""
    log_power = torch.where(score > 0, d * score.clamp_min(1e-300).log(), -torch.inf)      # (…, 4)
    return (1 - LAPSE) * torch.softmax(log_power, -1) + LAPSE / N_VALUES


def _matches(card: torch.Tensor) -> torch.Tensor:
    """card (…, 3) -> m (…, 4, 3): key k matches the card on dimension r."""
    return torch.nn.functional.one_hot(card.long(), N_VALUES).double().transpose(-1, -2)


def _attend(a: torch.Tensor, signal: torch.Tensor, rate, f) -> torch.Tensor:
    """a' = (1 − rate)·a + rate·s with s ∝ signal·a^f; a (B, 3), signal (B, 3) in {0, 1}, rate (B, 1)."""
    s = signal * a.clamp_min(1e-300) ** f                                        # (B, 3)
    z = s.sum(-1, keepdim=True)                                                  # (B, 1)
    s = torch.where(z > 0, s / z.clamp_min(1e-300), a)                           # no dimension signalled: keep a
    return a + rate * (s - a)


def _signal(card: torch.Tensor, choice: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The dimensions the feedback points to: those where the chosen key matches (right) or not (wrong)."""
    m = (card == choice.unsqueeze(-1)).double()                                  # (…, 3)
    return torch.where(right.unsqueeze(-1), m, 1 - m)


def update(a: torch.Tensor, card: torch.Tensor, choice: torch.Tensor, right: torch.Tensor, r, p, f) -> torch.Tensor:
    """One feedback step: a (B, 3), card (B, 3), choice (B,), right (B,) bool -> a' (B, 3)."""
    rate = torch.where(right[:, None], torch.as_tensor(r, dtype=torch.float64), torch.as_tensor(p, dtype=torch.float64))
    return _attend(a, _signal(card, choice, right), rate, f)


def _check(cards, choices, right) -> None:
    if cards.dim() != 3 or cards.shape[-1] != N_FEATURES:
        raise ValueError(f"cards must have shape (B, T, {N_FEATURES}), got {tuple(cards.shape)}")
    if choices.shape != cards.shape[:2] or right.shape != cards.shape[:2]:
        raise ValueError(f"choices {tuple(choices.shape)} and right {tuple(right.shape)} must both be "
                         f"{tuple(cards.shape[:2])} (B, T)")
    if right.dtype != torch.bool:
        raise TypeError(f"right must be a bool tensor (the right/wrong feedback), got {right.dtype}")


def replay(cards, choices, right, theta) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model along observed choices: (attention before each trial (B, T, 3), P(choices) (B, T)).

    ``theta``: a BisharaParams or a float64 tensor (r, p, d, f) (differentiable)."""
    _check(cards, choices, right)
    th = torch.as_tensor(theta.vector() if isinstance(theta, BisharaParams) else theta, dtype=torch.float64)
    r, p, d, f = th
    B, T, _ = cards.shape
    signal = _signal(cards, choices, right)                                      # (B, T, 3), all trials at once
    rate = torch.where(right, r, p).unsqueeze(-1)                                # (B, T, 1)
    a = torch.full((B, N_FEATURES), 1.0 / N_FEATURES, dtype=torch.float64)
    attn = []
    for t in range(T):                                                           # only the attention is sequential
        attn.append(a)
        a = _attend(a, signal[:, t], rate[:, t], f)
    attn = torch.stack(attn, 1)                                                  # (B, T, 3)
    probs = choice_probs(attn, cards, d)                                         # (B, T, 4)
    return attn, probs.gather(-1, choices.long().unsqueeze(-1)).squeeze(-1)      # (B, T, 3), (B, T)


def negative_log_likelihood(cards, choices, right, theta) -> torch.Tensor:
    """−Σ_{b,t} log P(c_bt | history; θ), a scalar (float64)."""
    return -replay(cards, choices, right, theta)[1].log().sum()


class BisharaChooser:
    """The model as a participant for ``variants.choice_stream``: sees only its choice and right/wrong."""

    def __init__(self, params: BisharaParams, batch: int):
        self.params = params
        self.a = torch.full((batch, N_FEATURES), 1.0 / N_FEATURES, dtype=torch.float64)

    def probs(self, card: torch.Tensor) -> torch.Tensor:
        return choice_probs(self.a, card, self.params.d)

    def update(self, card, choice, right, answer) -> None:
        self.a = update(self.a, card, choice, right, self.params.r, self.params.p, self.params.f)


# --- fitting: maximum likelihood of the choices, profile-likelihood intervals --------------------------

@dataclass
class BisharaFit:
    params: BisharaParams     # the maximum-likelihood θ
    nll: float                # −log L at θ
    n_choices: int            # choices the likelihood counts
    intervals: dict           # name -> (low, high): 95 % profile-likelihood interval (bounds where it reaches one)


def _minimize(data, start: np.ndarray, free: list[int]) -> tuple[np.ndarray, float]:
    """Minimise −log L over the parameters ``free`` (indices into θ), the rest held at ``start``."""
    from scipy.optimize import minimize  # imported here: only fitting needs it

    def objective(z):
        theta = torch.tensor(start, dtype=torch.float64)
        theta[free] = torch.as_tensor(z, dtype=torch.float64)
        theta.requires_grad_(True)
        nll = negative_log_likelihood(*data, theta)
        nll.backward()
        return nll.item(), theta.grad[free].numpy()

    bounds = [BOUNDS[PARAMS[i]] for i in free]
    x0 = np.clip(start[free], [lo for lo, _ in bounds], [hi for _, hi in bounds])
    res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds)
    theta = start.copy()
    theta[free] = res.x
    return theta, float(res.fun)


def fit_bishara(cards, choices, right, *, starts=((0.5, 0.5, 3.0, 1.0), (0.2, 0.8, 1.0, 0.3), (0.8, 0.2, 8.0, 3.0)),
                profile: tuple[str, ...] = PARAMS, steps: int = 6, bisect: int = 3) -> BisharaFit:
    """Maximum-likelihood (r, p, d, f) for choices ``(B, T)`` on ``cards (B, T, 3)`` with feedback
    ``right (B, T)`` bool; the best of several starts. For each name in ``profile`` the 95 % interval is
    found by walking from the estimate toward each bound (at 1/2^k of the way, k = steps−1 … 0) until
    the profile deviance 2Δ(−log L) passes 3.84, then bisecting ``bisect`` times."""
    _check(cards, choices, right)
    with single_thread():   # a T-step loop of tiny tensor ops: threads only add synchronisation
        return _fit(cards, choices, right, starts, profile, steps, bisect)


def _fit(cards, choices, right, starts, profile, steps, bisect) -> BisharaFit:
    data = (cards, choices, right)
    best = min((_minimize(data, np.array(s, dtype=float), [0, 1, 2, 3]) for s in starts), key=lambda x: x[1])
    theta, nll = best
    intervals = {name: _profile_interval(data, theta, nll, PARAMS.index(name), steps, bisect) for name in profile}
    return BisharaFit(BisharaParams(*(float(x) for x in theta)), nll, int(choices.numel()), intervals)


def profile_deviance(data, theta: np.ndarray, nll: float, index: int, value: float) -> float:
    """2·(min over the other parameters of −log L with θ_index = value − the minimum ``nll``)."""
    start = theta.copy()
    start[index] = value
    return 2 * (_minimize(data, start, [i for i in range(4) if i != index])[1] - nll)


def _profile_interval(data, theta, nll, index, steps, bisect) -> tuple[float, float]:
    ends = []
    for bound in BOUNDS[PARAMS[index]]:
        inside, outside = theta[index], None
        for k in range(steps - 1, -1, -1):                   # 1/32, 1/16, ... of the way, then the bound
            value = theta[index] + (bound - theta[index]) / 2 ** k
            if profile_deviance(data, theta, nll, index, value) > CHI2_1_95:
                outside = value
                break
            inside = value
        if outside is None:                                  # the likelihood never rules the bound out
            ends.append(float(bound))
            continue
        for _ in range(bisect):
            mid = (inside + outside) / 2
            if profile_deviance(data, theta, nll, index, mid) > CHI2_1_95:
                outside = mid
            else:
                inside = mid
        ends.append(float((inside + outside) / 2))
    return ends[0], ends[1]
