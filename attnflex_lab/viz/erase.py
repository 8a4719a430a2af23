"""Lesson 03's erase widget: blank regions of an image and see the prediction and the attention move.

Everything it shows is computed before it is built (``images``, ``weights`` and ``probs`` hold one
entry per image and erasure), so moving a control only redraws, and the static site can store every
state (images × erasures, at most 50). Core ipywidgets only (7 and 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._prep import to_numpy
from .images import plot_attention_on_image


def _check(images, weights, probs, choices, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pictures, heats, chances = to_numpy(images, "images"), to_numpy(weights), to_numpy(probs, "probs")
    if pictures.ndim == 5:
        pictures = pictures[:, :, 0]                                  # (N, K, 1, H, W) -> (N, K, H, W)
    n, k = heats.shape[:2] if heats.ndim == 3 else (None, None)
    if (pictures.ndim != 4 or heats.ndim != 3 or chances.ndim != 3 or pictures.shape[:2] != (n, k)
            or chances.shape[:2] != (n, k)):
        raise ValueError(f"need images (N, K, H, W), weights (N, K, T) and probs (N, K, C) for N images × "
                         f"K erasures, got {pictures.shape}, {heats.shape} and {chances.shape}")
    if len(choices) != k or len(labels) != n:
        raise ValueError(f"need one name per erasure ({k}) and one label per image ({n}), got "
                         f"{len(choices)} names and {len(labels)} labels")
    return pictures, heats, chances


def draw_erasure(picture, heat, chances, label: int, *, before: int | None = None, title: str = "") -> plt.Figure:
    """The erased image with its attention, and the class probabilities (the true class in orange)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(6.4, 2.8), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    plot_attention_on_image(picture, heat, ax=left)
    fig.suptitle(title, fontsize=10)
    classes = np.arange(len(chances))
    right.bar(classes, chances, color=["tab:orange" if c == label else "tab:blue" for c in classes])
    right.set_xticks(classes)
    right.set_ylim(0, 1)
    right.set_xlabel("class")
    right.set_ylabel("probability")
    guess = int(np.argmax(chances))
    was = "" if before is None else f" (before erasing: {before})"
    right.set_title(f"predicted {guess}, p = {chances[guess]:.2f}{was}", fontsize=9)
    return fig


def erase_explorer(images, weights, probs, *, choices: Sequence[str], labels: Sequence[int],
                   on_digit=None):
    """Dropdowns "image" and "erase" over precomputed erasures; returns the widget (a VBox).

    images (N, K, [1,] H, W): image n with erasure k applied; weights (N, K, T) its attention;
    probs (N, K, C) its class probabilities; ``choices`` names the K erasures (the first: nothing
    erased); ``labels`` the N true classes. With ``on_digit`` (N, T) it also prints the attention's
    mass on those regions before and after.
    """
    import ipywidgets as widgets  # only the explorer needs it

    pictures, heats, chances = _check(images, weights, probs, choices, labels)
    inside = None if on_digit is None else to_numpy(on_digit, "on_digit").astype(bool)
    image = widgets.Dropdown(options=[(f"image {i}: a {int(y)}", i) for i, y in enumerate(labels)],
                             value=0, description="image")
    erase = widgets.Dropdown(options=[(name, k) for k, name in enumerate(choices)], value=0, description="erase")

    def redraw(index: int, choice: int) -> None:
        before = int(np.argmax(chances[index, 0]))
        if inside is not None:
            mass = [float(heats[index, k][inside[index]].sum()) for k in (0, choice)]
            print(f"attention on the digit's regions: {mass[0]:.2f} before erasing, {mass[1]:.2f} now")
        draw_erasure(pictures[index, choice], heats[index, choice], chances[index, choice], int(labels[index]),
                     before=before, title=f"erased: {choices[choice]}")
        plt.show()

    output = widgets.interactive_output(redraw, {"index": image, "choice": erase})
    return widgets.VBox([widgets.HBox([image, erase]), output])
