"""Explaining one prediction, and measuring whether the explanation is faithful.

Dimension legend: B batch, K classes, P patches (regions), N = 1 + P tokens ([CLS] first), L layers,
H heads, S interpolation steps.

Four ways to score how much each input region mattered to a prediction f(x)_c:

- raw attention: the last layer's [CLS] row, averaged over heads (what a heatmap usually shows);
- attention rollout (Abnar & Zuidema 2020, ``attnflex_lab.analysis.rollout``): the mixing followed through all layers;
- gradient × input: x ⊙ ∂f_c/∂x, a first-order Taylor estimate of what removing x would cost;
- integrated gradients (Sundararajan et al. 2017): (x − x̄) ⊙ ∫₀¹ ∂f_c/∂x(x̄ + α(x − x̄)) dα, whose
  attributions add up to f_c(x) − f_c(x̄) ("completeness").

An explanation is *faithful* if the regions it ranks first are the ones the model needs. The
deletion curve (Petsiuk et al. 2018) removes regions in the explanation's order and follows the
predicted class's probability: the faster it falls, the lower the area under it, the better. The
insertion curve starts from the blank image and adds regions: the higher its area, the better. A
random order is the floor every explanation must beat. Removing a region means replacing it with a
*fill*: 0 (the blank image, which is also integrated gradients' default baseline), the mean pixel, or
a blurred copy (``controls.fill_images``); a fair comparison reports more than one fill, and gives IG
the baseline that matches the fill.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._validate import check_floating
from ..modules import run_with_cache
from .rollout import rollout

Scorer = Callable[[torch.Tensor], torch.Tensor]   # inputs (B, ...) -> logits (B, K)
# Integrated gradients runs its S·B path points through the model this many at a time. In one pass,
# lesson 12's gpu profile (400 images × 64 steps = 25,600 points) had its kernel killed at 12.5 GiB
# resident in a dry run on a CPU: close to all of a 16 GB GPU.
IG_CHUNK = 4096
Fill = float | torch.Tensor                         # a value, or images (B or 1, ch, H, W) to copy from


def _target_logits(f: Scorer, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    logits = f(x)                                                         # (B, K)
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"f must map inputs (B={x.shape[0]}, ...) to logits (B, K), "
                         f"got {tuple(logits.shape)}")
    return logits.gather(1, target[:, None]).squeeze(1)                   # (B,)


def _check_target(target: torch.Tensor | None, f: Scorer, x: torch.Tensor) -> torch.Tensor:
    """The class to explain per example: the prediction when ``target`` is None."""
    if target is None:
        with torch.no_grad():
            return f(x).argmax(-1)                                        # (B,)
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long:
        raise TypeError(f"target must be a torch.long tensor (B,), got "
                        f"{getattr(target, 'dtype', type(target).__name__)}")
    if target.shape != (x.shape[0],):
        raise ValueError(f"target must have shape (B={x.shape[0]},), got {tuple(target.shape)}")
    return target


def gradient_x_input(f: Scorer, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """x ⊙ ∂f_c(x)/∂x, same shape as x (B, ...); c = ``target`` or the predicted class."""
    check_floating(x=x)
    target = _check_target(target, f, x)
    x = x.detach().requires_grad_()
    # Each example's logit depends on its own input only, so the gradient of the sum is the stack of
    # per-example gradients (a model in eval mode: no batch statistics mix the examples).
    (grad,) = torch.autograd.grad(_target_logits(f, x, target).sum(), x)  # (B, ...)
    return x.detach() * grad


def integrated_gradients(f: Scorer, x: torch.Tensor, target: torch.Tensor | None = None, *,
                         baseline: torch.Tensor | None = None, steps: int = 32,
                         chunk: int = IG_CHUNK) -> torch.Tensor:
    """Integrated gradients (B, ...) along the straight path from ``baseline`` (default zeros) to x.

    The integral is a midpoint Riemann sum over ``steps`` points α_s = (s + ½)/steps: its error in
    the completeness identity shrinks like 1/steps² for a smooth f. The steps·B path points go through
    ``f`` ``chunk`` at a time (memory); ``f`` must treat the examples of a batch independently.
    """
    check_floating(x=x)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    baseline = torch.zeros_like(x) if baseline is None else baseline
    if baseline.shape != x.shape or baseline.dtype != x.dtype or baseline.device != x.device:
        raise ValueError(f"baseline must match x: x is {tuple(x.shape)} {x.dtype} on {x.device}, "
                         f"baseline is {tuple(baseline.shape)} {baseline.dtype} on {baseline.device}")
    target = _check_target(target, f, x)
    B = x.shape[0]
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps   # (S,)
    shape = (steps,) + (1,) * x.dim()
    delta = (x - baseline).detach()                                                # (B, ...)
    path = (baseline.detach() + alphas.view(shape) * delta).flatten(0, 1)          # (S·B, ...)
    targets = target.repeat(steps)                                                 # (S·B,)
    grad = torch.empty_like(path)
    for start in range(0, len(path), chunk):
        piece = path[start:start + chunk].requires_grad_()                        # (≤ chunk, ...)
        logits = _target_logits(f, piece, targets[start:start + chunk])
        (grad[start:start + chunk],) = torch.autograd.grad(logits.sum(), piece)
    mean_grad = grad.view(steps, B, *x.shape[1:]).mean(0)                          # (B, ...)
    return delta * mean_grad


# --- attention-based scores for the ViT ------------------------------------------------------------

@torch.no_grad()
def vit_attention_maps(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(L, B, H, N, N): every layer's attention maps for a batch of images, via the hook points."""
    _, cache = run_with_cache(model, images, names="hook_pattern")
    return cache.patterns()


def raw_attention_scores(maps: torch.Tensor) -> torch.Tensor:
    """(B, P): the last layer's [CLS] → patch weights, averaged over heads."""
    _check_maps(maps)
    return maps[-1, :, :, 0, 1:].mean(1)                   # (B, H, P) -> (B, P)


def rollout_scores(maps: torch.Tensor) -> torch.Tensor:
    """(B, P): the [CLS] row of each example's attention rollout over the patches, on the maps' device."""
    _check_maps(maps)
    return rollout(maps)[:, 0, 1:].to(maps.dtype)          # (L, B, H, N, N) -> (B, N, N) -> (B, P)


def _check_maps(maps: torch.Tensor) -> None:
    if not isinstance(maps, torch.Tensor) or maps.dim() != 5 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"maps must be self-attention stacks (L, B, H, N, N), got "
                         f"{tuple(getattr(maps, 'shape', ()))}")


def patch_scores(attributions: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, P): pixel attributions (B, 1, H, W) summed over each p×p patch, patches row-major."""
    if attributions.dim() != 4 or attributions.shape[-1] % patch_size or attributions.shape[-2] % patch_size:
        raise ValueError(f"attributions must be (B, ch, H, W) with H and W multiples of "
                         f"patch_size={patch_size}, got {tuple(attributions.shape)}")
    pooled = nn.functional.avg_pool2d(attributions.sum(1, keepdim=True), patch_size) * patch_size**2
    return pooled.flatten(1)                                # (B, 1, g, g) -> (B, P)


# --- faithfulness: deletion and insertion curves -----------------------------------------------------

def mask_patches(images: torch.Tensor, removed: torch.Tensor, patch_size: int,
                 fill: Fill = 0.0) -> torch.Tensor:
    """Images (B, ch, H, W) with the patches where ``removed`` (B, P) is True replaced by ``fill``: a
    number, or images (B or 1, ch, H, W) whose pixels are copied in (a mean image, a blurred copy)."""
    if images.dim() != 4 or images.shape[-1] % patch_size or images.shape[-2] % patch_size:
        raise ValueError(f"images must be (B, ch, H, W) with H and W multiples of patch_size={patch_size}, "
                         f"got {tuple(images.shape)}")
    B, _, height, width = images.shape
    grid_h, grid_w = height // patch_size, width // patch_size
    if removed.dtype != torch.bool or removed.shape != (B, grid_h * grid_w):
        raise ValueError(f"removed must be a bool (B={B}, P={grid_h * grid_w}) tensor, got "
                         f"{removed.dtype} {tuple(removed.shape)}")
    pixels = removed.view(B, 1, grid_h, grid_w)
    pixels = pixels.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)  # (B, 1, H, W)
    if not isinstance(fill, torch.Tensor):
        return images.masked_fill(pixels, fill)
    if fill.dim() != 4 or fill.shape[0] not in (1, B) or fill.shape[1:] != images.shape[1:]:
        raise ValueError(f"fill must be a number or images (B={B} or 1, {', '.join(map(str, images.shape[1:]))}), "
                         f"got {tuple(fill.shape)}")
    if fill.device != images.device or fill.dtype != images.dtype:
        raise ValueError(f"fill is {fill.dtype} on {fill.device}, images are {images.dtype} on {images.device}")
    return torch.where(pixels, fill, images)                             # (B, ch, H, W)


@torch.no_grad()
def perturbation_curve(f: Scorer, images: torch.Tensor, scores: torch.Tensor, patch_size: int, *,
                       target: torch.Tensor | None = None, mode: str = "deletion",
                       fill: Fill = 0.0) -> torch.Tensor:
    """(B, P + 1) probability of the target class after k = 0..P patches are removed (deletion) or
    inserted into a blank image (insertion), highest ``scores`` (B, P) first; removed patches take
    ``fill`` (see ``mask_patches``)."""
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    B, P = scores.shape
    if images.shape[0] != B or (images.shape[-1] // patch_size) * (images.shape[-2] // patch_size) != P:
        raise ValueError(f"scores (B, P) = {tuple(scores.shape)} do not fit images "
                         f"{tuple(images.shape)} cut into {patch_size}×{patch_size} patches")
    target = _check_target(target, f, images)
    order = scores.argsort(dim=1, descending=True)                        # (B, P): most important first
    rank = order.argsort(dim=1)                                           # (B, P): each patch's place
    k = torch.arange(P + 1, device=images.device)                         # (P + 1,)
    first_k = rank[:, None, :] < k[None, :, None]                         # (B, P + 1, P)
    removed = first_k if mode == "deletion" else ~first_k                 # insertion: all but the first k
    steps = images[:, None].expand(-1, P + 1, *images.shape[1:]).flatten(0, 1)        # (B·(P+1), ch, H, W)
    if isinstance(fill, torch.Tensor) and fill.dim() == 4 and fill.shape[0] == B > 1:
        fill = fill.repeat_interleave(P + 1, dim=0)                       # (B, ...) -> (B·(P+1), ...)
    perturbed = mask_patches(steps, removed.flatten(0, 1), patch_size, fill)
    probs = f(perturbed).softmax(-1).view(B, P + 1, -1)                   # (B, P + 1, K)
    return probs.gather(2, target[:, None, None].expand(-1, P + 1, 1)).squeeze(2)     # (B, P + 1)


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    """(B,) area under each curve (B, P + 1) drawn over the fraction of patches 0..1 (trapezoids)."""
    if curve.dim() != 2 or curve.shape[1] < 2:
        raise ValueError(f"curve must be (B, P + 1) with P ≥ 1, got {tuple(curve.shape)}")
    P = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(1) / (2 * P)


def random_scores(batch: int, patches: int, generator: torch.Generator, *,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """(B, P) random scores on ``device``: a random order, the floor an explanation has to beat.

    They are drawn on the generator's device and moved, so one seed gives the same orders anywhere.
    """
    return torch.rand(batch, patches, generator=generator, device=generator.device).to(device)


def rank_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) Spearman rank correlation of two score vectors per example (B, P), ties broken by order."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"need two (B, P) score tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    ranks = [s.argsort(1).argsort(1).double() for s in (a, b)]            # (B, P) each
    ra, rb = (r - r.mean(1, keepdim=True) for r in ranks)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


# --- everything at once, for the lesson and the learning test ------------------------------------------

def vit_explanations(model: nn.Module, images: torch.Tensor, target: torch.Tensor | None = None, *,
                     ig_steps: int = 32, baseline: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The four region scores (B, P) of one prediction per image, from a ViT in eval mode;
    ``baseline`` (B, ch, H, W) is integrated gradients' starting image (default: zeros)."""
    if model.training:
        raise ValueError("call model.eval() first: dropout would make every explanation random")
    patch = model.cfg.patch_size
    target = _check_target(target, model, images)
    maps = vit_attention_maps(model, images)                              # (L, B, H, N, N)
    return {
        "attention": raw_attention_scores(maps),
        "rollout": rollout_scores(maps),
        "grad×input": patch_scores(gradient_x_input(model, images, target), patch),
        "integrated gradients": patch_scores(
            integrated_gradients(model, images, target, baseline=baseline, steps=ig_steps), patch),
    }


def faithfulness_table(f: Scorer, images: torch.Tensor, explanations: dict[str, torch.Tensor],
                       patch_size: int, *, seed: int = 0, random_orders: int = 5,
                       target: torch.Tensor | None = None, fill: Fill = 0.0) -> dict[str, dict[str, float]]:
    """Mean deletion and insertion AUC per explanation, plus "random": the mean over
    ``random_orders`` random orders drawn from ``seed`` (one order alone is a noisy floor).
    Removed patches take ``fill`` (see ``mask_patches``).

    Deletion: lower is more faithful. Insertion: higher is more faithful.
    """
    target = _check_target(target, f, images)
    B, P = next(iter(explanations.values())).shape
    gen = torch.Generator().manual_seed(seed)

    def aucs(scores):
        return {mode: curve_auc(perturbation_curve(f, images, scores, patch_size, target=target,
                                                   mode=mode, fill=fill)).mean().item()
                for mode in ("deletion", "insertion")}

    table = {name: aucs(scores) for name, scores in explanations.items()}
    draws = [aucs(random_scores(B, P, gen, device=images.device)) for _ in range(random_orders)]
    table["random"] = {mode: sum(d[mode] for d in draws) / random_orders for mode in ("deletion", "insertion")}
    return table
