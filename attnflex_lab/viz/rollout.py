"""Attention rollout (Abnar & Zuidema 2020): how much each input token reaches each output, all layers.

The math (R = Ã_L ··· Ã_1 with Ã_l = normalise_rows(½·W_l + ½·I)) lives in ``attnflex_lab.analysis.rollout``,
which the analysis code uses without importing any plotting; this module draws it. For the ViT,
the [CLS] row of R over the patches is a map of the image; ``plot_rollout_overlay`` lays it over
the digit. Signed attributions (gradient × input, integrated gradients) go through
``plot_signed_patch_map``: a diverging colour map centred at 0, with a colour bar.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..analysis import rollout as rollout_math
from ..analysis.rollout import HEAD_FUSIONS  # noqa: F401  (kept importable from viz.rollout)
from ._prep import prepare_stack, to_numpy


def attention_rollout(maps, *, batch: int | None = None, head_fusion: str = "mean",
                      residual: bool = True) -> np.ndarray:
    """(T, T) rollout from per-layer self-attention maps (L, H, T, T) (or (L, B, H, T, T) with batch=).

    The math is ``attnflex_lab.analysis.rollout.rollout``; this wrapper takes what a learner has (arrays,
    lists, tensors) and checks it like every renderer does.
    """
    stack, _, _ = prepare_stack(maps, batch=batch)                  # (L, H, T, S)
    return rollout_math.rollout(torch.from_numpy(stack), head_fusion=head_fusion, residual=residual).numpy()


def cls_patch_map(rollout: np.ndarray, grid: int, *, cls_index: int = 0) -> np.ndarray:
    """The [CLS] row of a rollout over the P = grid² patch tokens, as a (grid, grid) image."""
    rollout = to_numpy(rollout, "rollout")
    expected = grid * grid + 1
    if rollout.shape != (expected, expected):
        raise ValueError(f"a {grid}×{grid} patch grid plus [CLS] needs a ({expected}, {expected}) "
                         f"rollout, got {rollout.shape}")
    patches = np.delete(rollout[cls_index], cls_index)               # (P,)
    return patches.reshape(grid, grid)                               # row-major, like the patch embedding


def plot_rollout_overlay(image, heat, *, ax: plt.Axes | None = None, alpha: float = 0.55,
                         cmap: str = "inferno", title: str | None = None) -> plt.Axes:
    """Draw ``image`` (H, W) in grey with ``heat`` (g, g) stretched over it and the digit's outline
    on top; return the Axes."""
    image = to_numpy(image, "image").squeeze()
    heat = to_numpy(heat, "heat")
    if image.ndim != 2 or heat.ndim != 2:
        raise ValueError(f"image must be (H, W) and heat (g, g), got {image.shape} and {heat.shape}")
    if image.shape[0] % heat.shape[0] or image.shape[1] % heat.shape[1]:
        raise ValueError(f"heat {heat.shape} must tile image {image.shape} evenly (one cell per patch)")
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3), layout="constrained")
    height, width = image.shape
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)                 # both layers cover the same pixels
    ax.imshow(image, cmap="gray_r", extent=extent, interpolation="nearest")
    ax.imshow(heat, cmap=cmap, alpha=alpha, extent=extent, interpolation="nearest")
    level = image.min() + 0.5 * (image.max() - image.min())   # half ink: the stroke's outline
    if image.max() > image.min():
        ax.contour(image, levels=[level], colors="cyan", linewidths=1.5)  # keeps the digit readable
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    return ax


def plot_signed_patch_map(image, heat, *, ax: plt.Axes | None = None, cmap: str = "RdBu_r",
                          title: str | None = None, colorbar: bool = True) -> plt.Axes:
    """Draw a signed per-patch score ``heat`` (g, g) on a diverging map centred at 0 (the same
    magnitude reads the same either side: red raised the class score, blue lowered it), the digit's
    outline on top, and a colour bar; return the Axes."""
    image = to_numpy(image, "image").squeeze()
    heat = to_numpy(heat, "heat")
    if image.ndim != 2 or heat.ndim != 2:
        raise ValueError(f"image must be (H, W) and heat (g, g), got {image.shape} and {heat.shape}")
    if image.shape[0] % heat.shape[0] or image.shape[1] % heat.shape[1]:
        raise ValueError(f"heat {heat.shape} must tile image {image.shape} evenly (one cell per patch)")
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3), layout="constrained")
    height, width = image.shape
    bound = float(np.abs(heat).max()) or 1.0                         # symmetric limits: 0 sits mid-map
    shown = ax.imshow(heat, cmap=cmap, vmin=-bound, vmax=bound, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                      interpolation="nearest")
    if image.max() > image.min():
        level = image.min() + 0.5 * (image.max() - image.min())
        ax.contour(image, levels=[level], colors="black", linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_rollout_grid(images: Sequence, heats: Sequence, *, labels: Sequence[str] | None = None,
                      alpha: float = 0.55) -> plt.Figure:
    """A row of overlays, one per image; ``labels`` become the titles. Returns the Figure."""
    if len(images) != len(heats):
        raise ValueError(f"got {len(images)} images but {len(heats)} heat maps")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels")
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.4), squeeze=False,
                             layout="constrained")
    for i, (image, heat) in enumerate(zip(images, heats, strict=True)):
        plot_rollout_overlay(image, heat, ax=axes[0, i], alpha=alpha,
                             title=None if labels is None else labels[i])
    return fig
