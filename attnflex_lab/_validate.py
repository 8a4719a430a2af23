"""Input checks shared by the reference math (functional) and the hand-derived ops.

Every message names the tensors, shapes, dtypes or devices at fault, so a learner can fix the call.
Dimension legend used across the lab: B batch, H heads, T queries, S keys, D query/key width,
Dv value width.
"""

from __future__ import annotations

import torch


def check_tensor(name: str, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def check_floating(**tensors: torch.Tensor) -> None:
    """Every tensor is a floating-point tensor, and they all share one dtype and one device."""
    for name, x in tensors.items():
        check_tensor(name, x)
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype} "
                            f"(convert with {name}.float())")
    names = list(tensors)
    first = names[0]
    for name in names[1:]:
        a, b = tensors[first], tensors[name]
        if a.dtype != b.dtype:
            raise TypeError(f"{first} and {name} must share a dtype, got {a.dtype} and {b.dtype}")
        if a.device != b.device:
            raise ValueError(f"{first} and {name} must be on one device, got {a.device} and {b.device}")


def check_min_dims(name: str, x: torch.Tensor, dims: int, legend: str) -> None:
    if x.dim() < dims:
        raise ValueError(f"{name} must have shape {legend} (at least {dims} dims), "
                         f"got shape {tuple(x.shape)}")


def check_mask(mask, target_shape: torch.Size, device: torch.device, what: str = "scores") -> None:
    """A boolean mask (True = may attend) that broadcasts to ``target_shape`` without enlarging it."""
    if mask is None:
        return
    check_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}; "
                        f"for a 0/1 tensor use mask.bool()")
    try:
        shape = torch.broadcast_shapes(mask.shape, target_shape)
    except RuntimeError:
        shape = None
    if shape != target_shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the {what} "
                         f"shape {tuple(target_shape)}")
    if mask.device != device:
        raise ValueError(f"mask is on {mask.device} but the {what} are on {device}")


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> None:
    """q (..., T, D), k (..., S, D), v (..., S, Dv), same leading dims; mask broadcasts to (..., T, S)."""
    check_floating(q=q, k=k, v=v)
    check_min_dims("q", q, 2, "(..., T, D)")
    check_min_dims("k", k, 2, "(..., S, D)")
    check_min_dims("v", v, 2, "(..., S, Dv)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last dim D, got q {tuple(q.shape)} "
                         f"and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys S (dim -2), got "
                         f"k {tuple(k.shape)} and v {tuple(v.shape)}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(f"q, k and v must share their leading (batch, head) dims, got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    weights_shape = torch.Size((*q.shape[:-1], k.shape[-2]))
    check_mask(mask, weights_shape, q.device, what="attention weights (..., T, S)")
