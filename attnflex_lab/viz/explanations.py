"""Lesson 12's image × method picker: one digit, one explanation, and how faithful it was there.

Every map is computed before the widget is built (``maps``: method -> (N, P) patch scores), so moving
a control only draws, and the static site can precompute the states (``viz.site_states`` records the
``interactive_output``). ``explanation_view`` is the data step on its own (testable without a
widget); ``explanation_picker`` returns the widget (a Dropdown of methods, an IntSlider of images),
core ipywidgets only (7 and 8).

A method whose scores can be negative (gradient × input, integrated gradients) is drawn on a
diverging map centred at 0 with a colour bar; attention weights (≥ 0) on a sequential one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from ._prep import to_numpy
from .rollout import plot_rollout_overlay, plot_signed_patch_map


def _as_images(images) -> np.ndarray:
    """(N, H, W) from (N, H, W) or single-channel (N, 1, H, W)."""
    images = to_numpy(images, "images")
    return images[:, 0] if images.ndim == 4 and images.shape[1] == 1 else images


def _check(images: np.ndarray, maps: Mapping[str, np.ndarray], deletion: Mapping[str, np.ndarray]) -> int:
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W) (or (N, 1, H, W)), got shape {images.shape}")
    if not maps:
        raise ValueError("maps must hold at least one method: {name: (N, P) patch scores}")
    for name, m in maps.items():
        grid = int(round(np.sqrt(m.shape[-1]))) if m.ndim == 2 else 0
        if m.ndim != 2 or m.shape[0] != len(images) or grid * grid != m.shape[1]:
            raise ValueError(f"maps[{name!r}] must be (N={len(images)}, P) with P a square number of "
                             f"patches, got shape {m.shape}")
    for name, d in deletion.items():
        if name not in maps or d.shape != (len(images),):
            raise ValueError(f"deletion[{name!r}] must be (N={len(images)},) for a method in maps "
                             f"{list(maps)}, got shape {d.shape}")
    return len(images)


def explanation_view(images, maps: Mapping, index: int, method: str, *, deletion: Mapping | None = None,
                     signed: Iterable[str] = ()) -> dict:
    """What the picker draws for (image ``index``, ``method``): the image (H, W), the method's patch
    scores as a (g, g) grid, whether it is signed, the patches ranked first (most important first)
    and, when ``deletion`` (method -> (N,) areas) is given, this image's deletion area."""
    images = _as_images(images)
    maps = {k: to_numpy(v, f"maps[{k!r}]") for k, v in maps.items()}
    deletion = {k: to_numpy(v, f"deletion[{k!r}]") for k, v in (deletion or {}).items()}
    n = _check(images, maps, deletion)
    if method not in maps:
        raise ValueError(f"method must be one of {list(maps)}, got {method!r}")
    if not 0 <= index < n:
        raise ValueError(f"index must be in 0..{n - 1}, got {index}")
    scores = maps[method][index]                                          # (P,)
    grid = int(round(np.sqrt(len(scores))))
    return {"image": images[index], "heat": scores.reshape(grid, grid), "signed": method in set(signed),
            "ranking": np.argsort(-scores, kind="stable"),
            "deletion": float(deletion[method][index]) if method in deletion else None}


def explanation_picker(images, maps: Mapping, *, deletion: Mapping | None = None, signed: Iterable[str] = (),
                       labels: Sequence[str] | None = None) -> widgets.VBox:
    """Build (not display) the widget: a method menu and an image slider; moving either redraws the
    chosen map over the chosen digit, titled with its three top patches and its deletion area."""
    signed = tuple(signed)
    explanation_view(images, maps, 0, next(iter(maps)), deletion=deletion, signed=signed)  # validates once
    n = len(_as_images(images))
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} images")
    menu = widgets.Dropdown(options=list(maps), value=next(iter(maps)), description="method")
    slider = widgets.IntSlider(value=0, min=0, max=n - 1, description="image", continuous_update=False)

    def redraw(method: str, index: int) -> None:
        view = explanation_view(images, maps, index, method, deletion=deletion, signed=signed)
        _, ax = plt.subplots(figsize=(3.6, 3.2), layout="constrained")
        top = ", ".join(str(int(p)) for p in view["ranking"][:3])
        title = f"{method}: top patches {top}"
        if view["deletion"] is not None:
            title += f"\ndeletion area {view['deletion']:.2f} (lower: more faithful)"
        if labels is not None:
            title = f"{labels[index]} · {title}"
        draw = plot_signed_patch_map if view["signed"] else plot_rollout_overlay
        draw(view["image"], view["heat"], ax=ax, title=title)
        ax.title.set_fontsize(8)
        plt.show()

    output = widgets.interactive_output(redraw, {"method": menu, "index": slider})
    return widgets.VBox([widgets.HBox([menu, slider]), output])


__all__ = ["explanation_picker", "explanation_view"]
