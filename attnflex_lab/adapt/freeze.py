"""Freezing parts of a model and counting what is left to train.

A frozen parameter has ``requires_grad = False``: backward leaves its ``.grad`` at None, and AdamW
skips parameters without a gradient, so it neither moves nor decays.
"""

from __future__ import annotations

from torch import nn

PARTS = ("attention", "mlp", "all_but_head", "all")
HEAD_NAMES = ("head", "lm_head")  # the output layer of SequenceEncoder and of TinyGPT


def _head(model: nn.Module) -> nn.Module:
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise ValueError(f"{type(model).__name__} has no output layer named one of {HEAD_NAMES}")


def part_parameters(model: nn.Module, part: str) -> list[nn.Parameter]:
    """The parameters of one part: every attention layer, every MLP, all but the head, or all."""
    from ..modules import MLP, MultiHeadAttention

    if part not in PARTS:
        raise ValueError(f"part {part!r} is not one of {PARTS}")
    if part == "all":
        return list(model.parameters())
    if part == "all_but_head":
        head = {id(p) for p in _head(model).parameters()}
        return [p for p in model.parameters() if id(p) not in head]
    kind = MultiHeadAttention if part == "attention" else MLP
    found = {id(p): p for m in model.modules() if isinstance(m, kind) for p in m.parameters()}
    if not found:
        raise ValueError(f"{type(model).__name__} has no {kind.__name__} to freeze")
    return list(found.values())


def freeze(model: nn.Module, *parts: str) -> nn.Module:
    """Freeze the named parts (see ``PARTS``) in place; other parameters keep their setting.

    With TinyGPT, whose head is tied to the token embedding, "all_but_head" leaves that shared
    matrix trainable: it is the head.
    """
    if not parts:
        raise ValueError(f"name at least one part to freeze, from {PARTS}")
    for part in parts:
        for param in part_parameters(model, part):
            param.requires_grad_(False)
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable again."""
    model.requires_grad_(True)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Parameters counted once each (tied weights once); only trainable ones if asked."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def trainable_parameters(model: nn.Module) -> int:
    return count_parameters(model, trainable_only=True)
