"""The one data-prep step every attention renderer shares.

It turns whatever the learner has (a torch tensor with grad on a GPU, a numpy array, nested lists)
into a float numpy array, picks the batch element and head to draw, and checks the weights against
the token labels, so every renderer fails early with the same clear message.

Dimension legend: L layers, B batch, H heads, T queries, S keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AttentionMap:
    """One (T, S) map ready to draw, with one label per query row and per key column."""

    weights: np.ndarray    # (T, S) float64, finite where allowed (masked cells set to 0)
    queries: list[str]     # T labels for the rows
    keys: list[str]        # S labels for the columns
    allowed: np.ndarray | None = None  # (T, S) bool, True = may attend; None: no mask was given


def to_numpy(weights, name: str = "weights") -> np.ndarray:
    """Detach, move to the CPU and convert to float64; a clear TypeError for anything else."""
    if hasattr(weights, "detach"):  # torch.Tensor without importing torch here
        weights = weights.detach().cpu().double().numpy()  # numpy has no bfloat16
    try:
        array = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a tensor or array of numbers, got "
                        f"{type(weights).__name__} ({err})") from None
    if array.dtype == object:
        raise TypeError(f"{name} must be a tensor or array of numbers, "
                        f"got {type(weights).__name__}")
    return array


def check_finite(array: np.ndarray, name: str = "weights") -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contain {int(bad.sum())} NaN/inf entries "
                         f"(first at index {first}); "
                         f"attention weights must be finite (a fully masked row should be zeros: "
                         f"use attnflex_lab.functional.masked_softmax)")


def _pick(array: np.ndarray, index: int | None, dim_name: str, legend: str) -> np.ndarray:
    """array[index] along the leading dim; with no index only a size-1 dim is unambiguous."""
    size = array.shape[0]
    if index is None:
        if size == 1:
            return array[0]
        raise ValueError(f"weights of shape {array.shape} {legend} have {size} entries along the "
                         f"{dim_name} dim; choose one with {dim_name}=0..{size - 1}")
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
        raise TypeError(f"{dim_name} must be an int, got {type(index).__name__}")
    if not -size <= index < size:
        raise ValueError(f"{dim_name}={index} is out of range for weights of shape {array.shape} "
                         f"{legend}: there are {size} entries along the {dim_name} dim")
    return array[index]


def select_map(array: np.ndarray, *, head: int | None = None, batch: int | None = None
               ) -> np.ndarray:
    """(T, S), (H, T, S) or (B, H, T, S) -> (T, S), picking ``batch`` then ``head``."""
    if array.ndim == 2:
        if head is not None or batch is not None:
            raise ValueError(f"weights of shape {array.shape} are one (T, S) map; there is no "
                             f"head or batch dim to pick head={head}, batch={batch} from")
        return array
    if array.ndim == 3:
        # A 3-D stack is (H, T, S) from one layer, or (B, T, S) from single-head attention.
        if head is not None and batch is not None:
            raise ValueError(f"weights of shape {array.shape} have one leading dim (H or B); "
                             f"give head= or batch=, not both")
        dim_name = "batch" if batch is not None else "head"
        return _pick(array, batch if batch is not None else head, dim_name, "(H, T, S)")
    if array.ndim == 4:
        one_batch = _pick(array, batch, "batch", "(B, H, T, S)")  # (B, H, T, S) -> (H, T, S)
        return _pick(one_batch, head, "head", "(H, T, S) of the chosen batch element")
    raise ValueError(f"weights must be (T, S), (H, T, S) or (B, H, T, S), got {array.ndim} dims "
                     f"with shape {array.shape}")


def make_labels(labels: Sequence | None, count: int, role: str) -> list[str]:
    """Labels as strings; positions 0..count-1 when none are given; a clear error on a mismatch."""
    if labels is None:
        return [str(i) for i in range(count)]
    if isinstance(labels, str):
        raise TypeError(f"{role} labels must be a sequence of labels, not one string {labels!r}; "
                        f"use list(text) for characters or text.split() for words")
    labels = [str(label) for label in labels]
    if len(labels) != count:
        raise ValueError(f"weights have {count} {role} positions, but {len(labels)} {role} "
                         f"labels were given")
    return labels


def prepare(weights, queries: Sequence | None = None, keys: Sequence | None = None, *,
            head: int | None = None, batch: int | None = None, mask=None) -> AttentionMap:
    """Everything a single-map renderer needs: finite (T, S) float weights and T + S labels.

    ``mask`` (bool, True = may attend, the package's convention) broadcasts to the weights' full
    shape and is picked along with them, so a (B, 1, 1, S) padding mask or a (T, S) causal mask
    fits (B, H, T, S) weights. Masked cells may hold anything (-inf scores, NaN): they are set to
    0 in ``weights`` and flagged in ``allowed`` for the renderer to draw as masked.
    """
    array = to_numpy(weights)
    if array.ndim < 2:
        raise ValueError(f"weights must be (T, S), (H, T, S) or (B, H, T, S), got shape "
                         f"{array.shape}")
    grid = select_map(array, head=head, batch=batch)  # (..., T, S) -> (T, S)
    allowed = None
    if mask is not None:
        allowed = select_map(_mask_like(mask, array.shape), head=head, batch=batch)  # (T, S)
        grid = np.where(allowed, grid, 0.0)
    check_finite(grid)
    num_queries, num_keys = grid.shape
    return AttentionMap(grid, make_labels(queries, num_queries, "query"),
                        make_labels(keys, num_keys, "key"), allowed)


def _mask_like(mask, shape: tuple[int, ...]) -> np.ndarray:
    """A bool mask broadcast to ``shape``, with errors that name the dtype or the shapes at fault."""
    if hasattr(mask, "detach"):  # torch.Tensor
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise TypeError(f"mask must be boolean (True = may attend), got dtype {array.dtype}; "
                        f"for a 0/1 array write mask == 1")
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(f"mask of shape {array.shape} does not broadcast to the weights' shape "
                         f"{shape}") from None


def prepare_stack(weights, queries: Sequence | None = None, keys: Sequence | None = None, *,
                  batch: int | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """Many heads (and layers) -> ``(stack (L, H, T, S), query labels, key labels)``.

    ``weights`` is (H, T, S) for one layer, (L, H, T, S) for a stack of layers, (L, B, H, T, S)
    with ``batch=``, or a list of L per-layer tensors, each (H, T, S), or (B, H, T, S) with
    ``batch=``.
    """
    if isinstance(weights, (list, tuple)):
        if not weights:
            raise ValueError("weights is an empty list; give one (H, T, S) map per layer")
        layers = [_one_layer(to_numpy(w, f"weights[{i}]"), batch, f"weights[{i}]")
                  for i, w in enumerate(weights)]
        shapes = {layer.shape for layer in layers}
        if len(shapes) != 1:
            raise ValueError(f"every layer must have the same (H, T, S) shape, "
                             f"got {sorted(shapes)}")
        stack = np.stack(layers)                         # L x (H, T, S) -> (L, H, T, S)
    else:
        array = to_numpy(weights)
        if array.ndim == 3:
            stack = _one_layer(array, batch, "weights")[None]  # (H, T, S) -> (1, H, T, S)
        elif array.ndim == 4 and batch is None:
            stack = array                                # (L, H, T, S)
        elif array.ndim == 5:
            stack = np.stack([_pick(layer, batch, "batch", "(B, H, T, S)") for layer in array])
        else:
            raise ValueError(f"weights for a grid of heads must be (H, T, S), (L, H, T, S) or "
                             f"(L, B, H, T, S) with batch=; got shape {array.shape} "
                             f"(batch={batch})")
    check_finite(stack)
    _, _, num_queries, num_keys = stack.shape
    return (stack, make_labels(queries, num_queries, "query"), make_labels(keys, num_keys, "key"))


def _one_layer(array: np.ndarray, batch: int | None, name: str) -> np.ndarray:
    """(H, T, S), or (B, H, T, S) with ``batch=`` -> (H, T, S)."""
    if array.ndim == 3 and batch is None:
        return array
    if array.ndim == 4:
        return _pick(array, batch, "batch", "(B, H, T, S)")
    raise ValueError(f"{name} must be (H, T, S), or (B, H, T, S) with batch=; got shape "
                     f"{array.shape} (batch={batch})")
