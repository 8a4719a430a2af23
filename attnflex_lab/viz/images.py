"""Images: attention weights laid over the picture they came from, and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ._prep import check_finite, to_numpy


def upsample_attention(weights, size: tuple[int, int], *, mode: str = "nearest") -> np.ndarray:
    """Region weights (T,) or (h, w) stretched to the image size (H, W); their sum is kept.

    ``mode="nearest"`` gives each region's weight to all its pixels; ``"bilinear"`` smooths.
    """
    grid = to_numpy(weights)
    if grid.ndim == 1:
        side = round(grid.size ** 0.5)
        if side * side != grid.size:
            raise ValueError(f"{grid.size} region weights do not form a square grid; pass (h, w)")
        grid = grid.reshape(side, side)                   # (T,) -> (h, w)
    if grid.ndim != 2:
        raise ValueError(f"weights must be (T,) or (h, w), got shape {grid.shape}")
    check_finite(grid)
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    tensor = torch.from_numpy(grid)[None, None]           # (h, w) -> (1, 1, h, w)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    big = F.interpolate(tensor, size=size, mode=mode, **kwargs)[0, 0].numpy()  # (H, W)
    total = big.sum()
    return big * (grid.sum() / total) if total > 0 else big


def plot_attention_on_image(image, weights, *, ax: plt.Axes | None = None, alpha: float = 0.55,
                            cmap: str = "inferno", mode: str = "nearest",
                            title: str | None = None) -> plt.Axes:
    """The image in grey with the region weights (T,) or (h, w) laid over it; returns the Axes."""
    picture = to_numpy(image, "image").squeeze()
    if picture.ndim != 2:
        raise ValueError(f"image must be (H, W) or (1, H, W), got shape {to_numpy(image).shape}")
    heat = upsample_attention(weights, picture.shape, mode=mode)  # (H, W)
    if ax is None:
        _, ax = plt.subplots(figsize=(2.5, 2.5), layout="constrained")
    ax.imshow(picture, cmap="gray_r", interpolation="nearest")
    ax.imshow(heat, cmap=cmap, alpha=alpha, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def plot_attention_gallery(images, weights, *, titles: Sequence[str] | None = None,
                           columns: int = 6, mode: str = "nearest") -> plt.Figure:
    """Overlays for a batch: images (N, [1,] H, W) and weights (N, T); returns the Figure."""
    pictures, heats = to_numpy(images, "images"), to_numpy(weights)
    if len(pictures) != len(heats):
        raise ValueError(f"{len(pictures)} images but {len(heats)} attention rows")
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(f"{len(pictures)} images but {len(titles)} titles")
    rows = max(1, -(-len(pictures) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 1.9 * rows),
                             layout="constrained", squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(pictures):
            plot_attention_on_image(pictures[i], heats[i], ax=ax, mode=mode,
                                    title=None if titles is None else titles[i])
        else:
            ax.axis("off")
    return fig


def confusion_matrix(labels, predictions, num_classes: int | None = None) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    truth = to_numpy(labels, "labels").astype(np.int64).ravel()
    guess = to_numpy(predictions, "predictions").astype(np.int64).ravel()
    if truth.shape != guess.shape:
        raise ValueError(f"{truth.size} labels but {guess.size} predictions")
    size = num_classes or int(max(truth.max(initial=0), guess.max(initial=0)) + 1)
    for name, ids in (("labels", truth), ("predictions", guess)):
        if ids.size and (ids.min() < 0 or ids.max() >= size):
            raise ValueError(f"{name} must be class ids in 0..{size - 1}, got values "
                             f"{int(ids.min())}..{int(ids.max())}")
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (truth, guess), 1)
    return counts


def plot_confusion_matrix(labels, predictions, *, num_classes: int | None = None,
                          class_names: Sequence[str] | None = None, normalize: bool = False,
                          ax: plt.Axes | None = None, cmap: str = "Blues",
                          title: str | None = None) -> plt.Axes:
    """Confusion matrix with counts (or row fractions if ``normalize``) in the cells; returns the Axes."""
    counts = confusion_matrix(labels, predictions, num_classes)
    size = counts.shape[0]
    names = [str(i) for i in range(size)] if class_names is None else list(class_names)
    if len(names) != size:
        raise ValueError(f"{size} classes but {len(names)} class names")
    shown = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalize else counts
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * size + 1.5, 0.5 * size + 1.2), layout="constrained")
    ax.imshow(shown, cmap=cmap, interpolation="nearest")
    for (row, col), value in np.ndenumerate(shown):
        if counts[row, col]:
            text = f"{value:.2f}" if normalize else str(value)
            dark = value > 0.5 * shown.max()
            ax.text(col, row, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xticks(range(size), names)
    ax.set_yticks(range(size), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title is not None:
        ax.set_title(title)
    return ax


def attention_image_slider(images, weights, *, titles: Sequence[str] | None = None):
    """A slider (description "image") over images (N, [1,] H, W) with their region weights (N, T).

    Each move redraws ``plot_attention_on_image`` for the chosen image: the picture in the first
    image layer, the upsampled weights in the second. Core ipywidgets only (7 and 8).
    """
    import ipywidgets as widgets  # only the explorer needs it

    if len(images) != len(weights) or len(images) == 0:
        raise ValueError(f"need one weight row per image and at least one image, got "
                         f"{len(images)} images and {len(weights)} weight rows")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    slider = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                               continuous_update=False)

    def redraw(index: int) -> None:
        _, ax = plt.subplots(figsize=(3, 3), layout="constrained")
        plot_attention_on_image(images[index], weights[index], ax=ax,
                                title=titles[index] if titles is not None else f"image {index}")
        plt.show()

    return widgets.VBox([slider, widgets.interactive_output(redraw, {"index": slider})])
