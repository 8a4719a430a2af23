"""Attention rollout (Abnar & Zuidema 2020): how much each input token reaches each output, all layers.

One layer's map says where a position looks, but after layer 1 a "position" is already a mixture
of tokens. Rollout follows the mixing through the stack. With head-averaged weights W_l and the
residual connection counted as attention to oneself,

    Ã_l = normalise_rows(½·W_l + ½·I),     R = Ã_L · Ã_{L-1} · … · Ã_1,

and R[i, j] is the share of token j in output position i. For the ViT, the [CLS] row of R over the
patches is a map of the image; ``plot_rollout_overlay`` lays it over the digit.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._prep import prepare_stack, to_numpy

HEAD_FUSIONS = ("mean", "max", "min")


def attention_rollout(maps, *, batch: int | None = None, head_fusion: str = "mean",
                      residual: bool = True) -> np.ndarray:
    """(T, T) rollout from per-layer self-attention maps (L, H, T, T) (or (L, B, H, T, T) with batch=)."""
    stack, _, _ = prepare_stack(maps, batch=batch)                  # (L, H, T, S)
    num_queries, num_keys = stack.shape[2:]
    if num_queries != num_keys:
        raise ValueError(f"rollout needs self-attention maps (T == S), got T={num_queries}, S={num_keys}")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion {head_fusion!r} is not one of {HEAD_FUSIONS}")
    fused = getattr(stack, head_fusion)(axis=1)                      # (L, H, T, T) -> (L, T, T)
    identity = np.eye(num_queries)
    rollout = identity
    for layer_map in fused:                                          # from the first layer up
        mixed = 0.5 * layer_map + 0.5 * identity if residual else layer_map   # (T, T)
        mixed = mixed / mixed.sum(axis=-1, keepdims=True).clip(min=1e-12)      # rows sum to 1
        rollout = mixed @ rollout                                    # (T, T) @ (T, T) -> (T, T)
    return rollout


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
