"""Robustness: input noise and adversarial perturbations (FGSM, PGD) in an L∞ ball (lesson 09).

Both attacks take ``loss_of(x) -> scalar loss`` — a closure over the model and the labels — so they
work on pixels (digits) and on embeddings alike, and know nothing of any one model.

- FGSM (Goodfellow, Shlens & Szegedy 2015): one step of size ε along sign(∇ₓ loss). To first order
  it is the L∞ perturbation of size ε that raises the loss the most.
- PGD (Madry et al. 2018): ``steps`` signed-gradient steps of size ``step_size``, each projected back
  into the ball ‖δ‖∞ ≤ ε (and into the valid input range), from a random start in the ball.

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


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, clamp) -> torch.Tensor:
    """Back into the ball ‖x_adv − x‖∞ ≤ ε, then into the valid range."""
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
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient ascent on the loss inside ‖δ‖∞ ≤ ε (detached; same shape as x).

    ``step_size`` defaults to 2.5 ε / steps (Madry et al.), so the walk can reach the ball's edge."""
    _check_attack(x, eps, clamp)
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    step_size = 2.5 * eps / steps if step_size is None else step_size
    if not step_size > 0 and eps > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    x = x.detach()
    x_adv = x
    if random_start and eps > 0:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)  # U[0, 1)
        x_adv = _project(x + eps * (2 * noise - 1), x, eps, clamp)                    # U[−ε, ε)
    for _ in range(steps):
        grad = _input_gradient(loss_of, x_adv)
        x_adv = _project(x_adv + step_size * grad.sign(), x, eps, clamp)
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
