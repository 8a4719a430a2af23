"""Cluttered digits: an 8×8 digit at a random place on a larger canvas, among distractor strokes.

Each distractor is a random 4×4 crop of *another* digit image (a piece of stroke, never a whole
digit), pasted at a random place; where it overlaps the digit the brighter pixel wins. The digit's
place is recorded, so we can ask whether attention over the canvas finds it: ``digit_regions``
marks the regions (2×2 pixel cells, the classifier's grid) that the digit covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

from .digits import IMAGE_SIZE, load_digit_arrays

CROP = 4              # a distractor is a CROP×CROP piece of another digit


@dataclass
class CanvasData:
    train: TensorDataset      # (images (N, 1, size, size) in [0, 1], labels (N,), corners (N, 2))
    val: TensorDataset
    test: TensorDataset
    size: int                 # canvas side in pixels
    seed: int


def clutter(images: torch.Tensor, size: int, distractors: int, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each (1, 8, 8) digit at a random corner on a (1, size, size) canvas with clutter.

    Returns canvases (N, 1, size, size) and the digits' top-left corners (N, 2) as (row, col).
    """
    n = images.shape[0]
    if size < IMAGE_SIZE:
        raise ValueError(f"the canvas ({size}) must be at least the digit's size ({IMAGE_SIZE})")
    canvas = torch.zeros(n, 1, size, size)
    corners = torch.randint(0, size - IMAGE_SIZE + 1, (n, 2), generator=generator)   # (N, 2)
    for _ in range(distractors):
        donors = torch.randint(0, n, (n,), generator=generator)                     # other digits
        src = torch.randint(0, IMAGE_SIZE - CROP + 1, (n, 2), generator=generator)
        dst = torch.randint(0, size - CROP + 1, (n, 2), generator=generator)
        rows, cols = _window(src, CROP)
        piece = images[donors[:, None, None], 0, rows, cols]                        # (N, 4, 4)
        _paste(canvas, piece, dst)
    _paste(canvas, images[:, 0], corners)                                           # the digit
    return canvas, corners


def _window(corners: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (N, k, k) of the k×k windows whose top-left corners are (N, 2)."""
    ar = torch.arange(k)
    return corners[:, :1, None] + ar[None, :, None], corners[:, 1:, None] + ar[None, None, :]


def _paste(canvas: torch.Tensor, pieces: torch.Tensor, corners: torch.Tensor) -> None:
    """In place: canvas (N, 1, s, s) takes the brighter of itself and pieces (N, k, k) at corners."""
    rows, cols = _window(corners, pieces.shape[-1])
    n = torch.arange(canvas.shape[0])[:, None, None]
    canvas[n, 0, rows, cols] = torch.maximum(canvas[n, 0, rows, cols], pieces)


def digit_regions(corners: torch.Tensor, size: int, cell: int = 2) -> torch.Tensor:
    """(N, T) True on the regions (cell×cell pixels, row-major) that overlap each digit's 8×8 box."""
    side = size // cell
    grid = torch.arange(side) * cell                                   # each region's first pixel
    rows = (grid[None] + cell > corners[:, :1]) & (grid[None] < corners[:, :1] + IMAGE_SIZE)
    cols = (grid[None] + cell > corners[:, 1:]) & (grid[None] < corners[:, 1:] + IMAGE_SIZE)
    return (rows[:, :, None] & cols[:, None, :]).flatten(1)            # (N, side, side) -> (N, T)


def make_canvas_digits(seed: int = 0, *, size: int = 24, distractors: int = 6,
                       limit: int | None = None) -> CanvasData:
    """Seeded train / val / test (70 / 10 / 20 %) of cluttered canvases of the 1,797 digits."""
    images, labels = load_digit_arrays()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    if limit is not None:
        order = order[:limit]
    canvases, corners = clutter(images[order], size, distractors, g)
    labels = labels[order]
    n = len(order)
    n_test, n_val = round(n * 0.2), round(n * 0.1)
    parts = {"test": slice(0, n_test), "val": slice(n_test, n_test + n_val),
             "train": slice(n_test + n_val, n)}
    sets = {k: TensorDataset(canvases[s], labels[s], corners[s]) for k, s in parts.items()}
    return CanvasData(sets["train"], sets["val"], sets["test"], size, seed)


def erase_regions(images: torch.Tensor, erase: torch.Tensor, cell: int = 2) -> torch.Tensor:
    """A copy of images (N, 1, H, W) with the regions marked in erase (N, T) blanked to 0.

    Regions are cell×cell pixel squares in row-major order, the classifier's grid (T = (H/cell)·(W/cell)).
    """
    n, _, height, width = images.shape
    rows, cols = height // cell, width // cell
    if erase.shape != (n, rows * cols) or erase.dtype != torch.bool:
        raise ValueError(f"erase must be a bool (N={n}, T={rows * cols}) mask of the {rows}×{cols} regions, "
                         f"got {erase.dtype} {tuple(erase.shape)}")
    pixels = erase.view(n, 1, rows, cols).repeat_interleave(cell, 2).repeat_interleave(cell, 3)  # (N, 1, H, W)
    return images.masked_fill(pixels, 0.0)


def erasure_choices(alpha: torch.Tensor, on_digit: torch.Tensor) -> dict[str, torch.Tensor]:
    """What lesson 03's widget can erase, each a bool (N, T) mask built from the attention before erasing.

    alpha (N, T) the weights on the intact canvases, on_digit (N, T) the digit's regions.
    """
    top = alpha.argsort(-1, descending=True)                           # (N, T) regions, most attended first
    first = torch.zeros_like(on_digit).scatter_(1, top[:, :1], True)   # (N, T)
    three = torch.zeros_like(on_digit).scatter_(1, top[:, :3], True)
    return {"nothing": torch.zeros_like(on_digit),
            "the most-attended region": first,
            "the 3 most-attended regions": three,
            "the digit, except its most-attended region": on_digit & ~first,
            "every region on the digit": on_digit.clone(),
            "the clutter (every region off the digit)": ~on_digit}
