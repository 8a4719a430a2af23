"""Robustness: input noise and adversarial perturbations (FGSM, PGD) in an L∞ ball (lesson 09).

Both attacks take ``loss_of(x) -> scalar loss`` — a closure over the model and the labels — so they
work on pixels (digits) and on embeddings alike, and know nothing of any one model.

- FGSM (Goodfellow, Shlens & Szegedy 2015): one step of size ε along sign(∇ₓ loss). To first order
  it is the L∞ perturbation of size ε that raises the loss the most.
- PGD (Madry et al. 2018): ``steps`` gradient-ascent steps of size ``step_size``, each projected back
  into the ball (and into the valid input range), from a random start in the ball. In the L∞ ball
  (``norm="linf"``, the default) the steepest step is sign(∇ₓ loss) and the projection clamps each
  entry to [x − ε, x + ε]; in the L2 ball (``norm="l2"``) the step is ∇ₓ loss / ‖∇ₓ loss‖₂ and the
  projection rescales δ = x_adv − x by min(1, ε / ‖δ‖₂), per example (``project_l2``, derived in
  lesson 09's exercise).

Adversarial training replaces each clean batch by its attacked version (Madry et al.'s min–max).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LossOf = Callable[[torch.Tensor], torch.Tensor]   # x (same shape as the input) -> scalar loss


def _check_attack(x: torch.Tensor, eps: float, clamp: tuple[float, float] | None) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor (pixels or embeddings), got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() == 0 or x.numel() == 0:
        raise ValueError(f"x must be a non-empty batch, got shape {tuple(x.shape)}")
    if not (isinstance(eps, (int, float)) and eps >= 0 and eps == eps and eps != float("inf")):
        raise ValueError(f"eps must be a finite number >= 0 (the L-inf radius), got {eps!r}")
    if clamp is not None and not clamp[0] < clamp[1]:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp!r}")


def _input_gradient(loss_of: LossOf, x: torch.Tensor) -> torch.Tensor:
    """∇ₓ loss_of(x), without touching any parameter's .grad."""
    x = x.detach().requires_grad_(True)
    loss = loss_of(x)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise ValueError(f"loss_of must return a scalar loss, got "
                         f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
    (grad,) = torch.autograd.grad(loss, x)
    return grad                                              # same shape as x


NORMS = ("linf", "l2")


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """‖t_n‖₂ over every dim but the first, shaped to broadcast against t: (N, 1, ..., 1)."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """The closest point to each example's δ_n (dim 0 indexes examples) in the ball ‖δ_n‖₂ ≤ ε.

    By Cauchy–Schwarz the closest point of the ball to an outside δ lies on the ray through δ, at
    radius ε: δ · ε / ‖δ‖₂; inside, δ itself. Together: δ · min(1, ε / ‖δ‖₂) (δ = 0 stays 0).
    """
    if not isinstance(delta, torch.Tensor) or not delta.is_floating_point() or delta.dim() == 0:
        what = getattr(delta, "dtype", type(delta).__name__)
        raise TypeError(f"delta must be a floating-point tensor with a batch dim, got {what} "
                        f"of shape {tuple(getattr(delta, 'shape', ()))}")
    if not (isinstance(eps, (int, float)) and 0 <= eps < float("inf")):
        raise ValueError(f"eps must be a finite number >= 0 (the L2 radius), got {eps!r}")
    norms = _per_example_norm(delta)                                   # (N, 1, ..., 1)
    tiny = torch.finfo(delta.dtype).tiny
    return delta * (eps / norms.clamp_min(tiny)).clamp(max=1.0)        # same shape as delta


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, clamp, norm: str = "linf") -> torch.Tensor:
    """Back into the ball ‖x_adv − x‖ ≤ ε (L∞ or L2), then into the valid range.

    For L∞ the ball and the range are both boxes, so clamping to one then the other is the exact
    projection onto their intersection; for L2 it is the usual approximation (the two steps commute
    only approximately), as in Madry et al.'s code."""
    if norm == "l2":
        x_adv = x + project_l2(x_adv - x, eps)
    else:
        x_adv = torch.max(torch.min(x_adv, x + eps), x - eps)
    return x_adv if clamp is None else x_adv.clamp(*clamp)


def fgsm(loss_of: LossOf, x: torch.Tensor, eps: float, *,
         clamp: tuple[float, float] | None = None) -> torch.Tensor:
    """x + ε · sign(∇ₓ loss): one signed-gradient step (detached; same shape as x).

    ``clamp=(0, 1)`` keeps pixels valid (then some entries move less than ε)."""
    _check_attack(x, eps, clamp)
    x = x.detach()
    grad = _input_gradient(loss_of, x)
    return _project(x + eps * grad.sign(), x, eps, clamp).detach()


def pgd(loss_of: LossOf, x: torch.Tensor, eps: float, *, steps: int = 7, step_size: float | None = None,
        random_start: bool = True, clamp: tuple[float, float] | None = None,
        generator: torch.Generator | None = None, norm: str = "linf") -> torch.Tensor:
    """Projected gradient ascent on the loss inside ‖δ‖ ≤ ε, L∞ or L2 (detached; same shape as x).

    ``step_size`` defaults to 2.5 ε / steps (Madry et al.), so the walk can reach the ball's edge."""
    _check_attack(x, eps, clamp)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    step_size = 2.5 * eps / steps if step_size is None else step_size
    if not step_size > 0 and eps > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    x = x.detach()
    x_adv = x
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)  # U[0, 1)
        x_adv = _project(x + eps * (2 * noise - 1), x, eps, clamp, norm)              # in the ball
    for _ in range(steps):
        grad = _input_gradient(loss_of, x_adv)
        # the steepest ascent step of length 1 in the attack's norm: sign(g) for L∞, g / ‖g‖₂ for L2
        direction = grad.sign() if norm == "linf" else grad / _per_example_norm(grad).clamp_min(1e-12)
        x_adv = _project(x_adv + step_size * direction, x, eps, clamp, norm)
    return x_adv.detach()


def gaussian_noise(x: torch.Tensor, std: float, *, clamp: tuple[float, float] | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """x + N(0, std²) noise (random, not adversarial): the baseline every attack should beat."""
    _check_attack(x, std, clamp)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    out = x + std * noise
    return out if clamp is None else out.clamp(*clamp)


def corrupt_tokens(idx: torch.Tensor, rate: float, vocab_size: int, *,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each token with probability ``rate`` by a uniformly drawn *different* token.

    Returns (corrupted ids, changed mask), both shaped like idx (N, T)."""
    if idx.dtype != torch.long:
        raise TypeError(f"idx must hold token ids (int64), got {idx.dtype}")
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be in [0, 1], got {rate!r}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2 to corrupt a token, got {vocab_size}")
    changed = torch.rand(idx.shape, generator=generator) < rate                 # (N, T)
    shift = torch.randint(1, vocab_size, idx.shape, generator=generator)        # 1..V-1: never the same
    corrupted = torch.where(changed, (idx.cpu() + shift) % vocab_size, idx.cpu())
    return corrupted.to(idx.device), changed.to(idx.device)
