"""Input checks shared by the reference math (functional) and the hand-derived ops.

Every message names the tensors, shapes, dtypes or devices at fault, so a learner can fix the call.
Dimension legend used across the lab: B batch, H heads, T queries, S keys, D query/key width,
Dv value width.
"""

from __future__ import annotations

import math

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
            raise ValueError(f"{first} and {name} must be on one device, got {a.device} "
                             f"and {b.device}")


def check_scale(scale) -> float:
    """A finite real number (the factor on q·kᵀ); returned as a float."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a real number (a Python float), got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    return float(scale)


def check_min_dims(name: str, x: torch.Tensor, dims: int, legend: str) -> None:
    if x.dim() < dims:
        raise ValueError(f"{name} must have shape {legend} (at least {dims} dims), "
                         f"got shape {tuple(x.shape)}")


def check_mask(mask, target_shape: torch.Size, device: torch.device, what: str = "scores") -> None:
    """A bool mask (True = may attend) that broadcasts to ``target_shape`` without enlarging it."""
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
    """q (..., T, D), k (..., S, D), v (..., S, Dv) with equal leading dims.

    The mask broadcasts to (..., T, S).
    """
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


def check_pool_inputs(e: torch.Tensor, w_a: torch.Tensor, mask=None) -> None:
    """Features e (..., T, d), a context vector w_a (d,), and a mask broadcasting to (..., T)."""
    check_floating(e=e, w_a=w_a)
    check_min_dims("e", e, 2, "(..., T, d)")
    if w_a.shape != (e.shape[-1],):
        raise ValueError(f"w_a must be a vector of shape (d,) = ({e.shape[-1]},) to score features "
                         f"e {tuple(e.shape)}, got {tuple(w_a.shape)}")
    check_mask(mask, e.shape[:-1], e.device, what="pooling scores (..., T)")


def check_readout_inputs(c: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> None:
    """A read-out y = vᵀ U c: c (..., d), U (h, d), v (h,)."""
    check_floating(c=c, U=u, v=v)
    check_min_dims("c", c, 1, "(..., d)")
    if u.dim() != 2 or v.dim() != 1 or u.shape != (v.shape[0], c.shape[-1]):
        raise ValueError(f"a read-out y = vᵀ U c needs c (..., d), U (h, d) and v (h,) with "
                         f"d = {c.shape[-1]}; got c {tuple(c.shape)}, U {tuple(u.shape)}, "
                         f"v {tuple(v.shape)}")
