"""Interventions on a transformer's heads and residual stream: ablation, pruning, activation patching.

Dimension legend: B batch, T positions, C model width, H heads, Dh head width (C = H · Dh), L layers.

Every intervention is a PyTorch hook, removed in ``finally``, so it works with every attention
backend (the heads are read and edited at each layer's named hook point ``attn.hook_z``, (B, H, T, Dh),
each head's output before the heads are concatenated and projected), and the model is unchanged
afterwards:

- ``ablate_heads``: zero the chosen heads' outputs (Michel et al. 2019's head mask set to 0);
- ``head_importance``: the loss increase when each head alone is ablated;
- ``pruning_curve``: a metric as the least important heads are removed one after another;
- ``patch_heads`` / ``patching_effects``: run a corrupted input with one head's output (or one
  position of the residual stream) taken from the clean run (Vig et al. 2020; Meng et al. 2022),
  and measure how much of the clean answer comes back.
- ``uniform_attention``: every attention row (of all layers, or only the chosen ones) replaced by the
  uniform distribution over the keys it may see (Wiegreffe & Pinter 2019's first baseline): does the
  model need its attention at all? Flattening every layer of a ViT also stops it mixing tokens, so
  the fair test flattens only the layer whose map is read (the last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
from torch import nn

from ..modules import MultiHeadAttention

Head = tuple[int, int]   # (layer, head)


def attention_layers(model: nn.Module, *, kind: str | None = None) -> list[MultiHeadAttention]:
    """Every MultiHeadAttention in ``model``, in module order (layer 0 first).

    ``kind="self"`` or ``"cross"`` keeps only those layers. ``kind=None`` takes them all, but refuses
    a model that has both (an encoder–decoder): its "layer ℓ" would count encoder self-attention,
    decoder self-attention and cross-attention in one list, so a label would not say which it is.
    """
    if kind not in (None, "self", "cross"):
        raise ValueError(f"kind must be None, 'self' or 'cross', got {kind!r}")
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention layer")
    n_cross = sum(m.cross for m in layers)
    if kind is None and 0 < n_cross < len(layers):
        raise ValueError(f"{type(model).__name__} has {len(layers) - n_cross} self-attention and {n_cross} "
                         f"cross-attention layers; pass kind='self' or kind='cross' so layer numbers "
                         f"name one kind")
    if kind is not None:
        layers = [m for m in layers if m.cross == (kind == "cross")]
        if not layers:
            raise ValueError(f"{type(model).__name__} has no {kind}-attention layer")
    return layers


def _check_heads(layers: list[MultiHeadAttention], heads: Iterable[Head]) -> list[Head]:
    heads = [tuple(h) for h in heads]
    for layer, head in heads:
        if not (0 <= layer < len(layers) and 0 <= head < layers[layer].n_heads):
            raise ValueError(f"head (layer={layer}, head={head}) does not exist: the model has "
                             f"{len(layers)} layers of {layers[0].n_heads} heads")
    return heads


@contextmanager
def ablate_heads(model: nn.Module, heads: Iterable[Head]):
    """Within the block, the outputs of ``heads`` [(layer, head), ...] are zero."""
    layers = attention_layers(model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in _check_heads(layers, heads):
        by_layer.setdefault(layer, []).append(head)

    def zero(chosen):
        def hook(module, inputs, z):
            z = z.clone()                                                  # (B, H, T, Dh)
            z[:, chosen] = 0.0
            return z
        return hook

    handles = [layers[i].hook_z.register_forward_hook(zero(hs)) for i, hs in by_layer.items()]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def head_importance(model: nn.Module, loss_of: Callable[[nn.Module], float]) -> torch.Tensor:
    """(L, H) loss increase when each head alone is ablated; ``loss_of(model)`` scores the model."""
    layers = attention_layers(model)
    base = loss_of(model)
    scores = torch.zeros(len(layers), layers[0].n_heads)
    for layer in range(len(layers)):
        for head in range(layers[layer].n_heads):
            with ablate_heads(model, [(layer, head)]):
                scores[layer, head] = loss_of(model) - base
    return scores


@torch.no_grad()
def pruning_curve(model: nn.Module, importance: torch.Tensor, metric_of: Callable[[nn.Module], float]
                  ) -> list[tuple[int, float]]:
    """[(heads kept, metric), ...] from all heads down to none, least important removed first."""
    order = importance.flatten().argsort()                               # least important first
    n_heads = importance.shape[1]
    removed: list[Head] = []
    curve = [(importance.numel(), metric_of(model))]
    for flat in order.tolist():
        removed.append(divmod(flat, n_heads))
        with ablate_heads(model, removed):
            curve.append((importance.numel() - len(removed), metric_of(model)))
    return curve


@torch.no_grad()
def greedy_pruning_curve(model: nn.Module, loss_of: Callable[[nn.Module], float],
                         metric_of: Callable[[nn.Module], float]) -> list[tuple[int, float]]:
    """Like ``pruning_curve``, but importance is measured again after every removal: the next head to
    go is the one whose ablation, on top of those already gone, raises ``loss_of`` least. Heads that
    back each other up look unimportant one at a time; this finds out when the backup is gone."""
    layers = attention_layers(model)
    remaining = [(layer, head) for layer in range(len(layers)) for head in range(layers[layer].n_heads)]
    removed: list[Head] = []
    curve = [(len(remaining), metric_of(model))]
    while remaining:
        def loss_without(h):
            with ablate_heads(model, removed + [h]):
                return loss_of(model)
        cheapest = min(remaining, key=loss_without)
        remaining.remove(cheapest)
        removed.append(cheapest)
        with ablate_heads(model, removed):
            curve.append((len(remaining), metric_of(model)))
    return curve


# --- activation patching ---------------------------------------------------------------------------

@torch.no_grad()
def cache_head_outputs(model: nn.Module, *args) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``model(*args)``; return its output and each layer's per-head outputs (B, T, H, Dh)."""
    layers = attention_layers(model)
    cache: list[torch.Tensor | None] = [None] * len(layers)

    def record(i):
        def hook(module, inputs, z):
            cache[i] = z.detach().transpose(1, 2).clone()                  # (B, H, T, Dh) -> (B, T, H, Dh)
        return hook

    handles = [attn.hook_z.register_forward_hook(record(i)) for i, attn in enumerate(layers)]
    try:
        output = model(*args)
    finally:
        for handle in handles:
            handle.remove()
    return output, cache


@contextmanager
def patch_heads(model: nn.Module, patches: dict[Head, torch.Tensor]):
    """Within the block, head (layer, head)'s output is replaced by the given (B, T, Dh) values."""
    layers = attention_layers(model)
    _check_heads(layers, patches)

    def replace(layer):
        def hook(module, inputs, z):
            z = z.clone()                                                  # (B, H, T, Dh)
            for (lay, head), value in patches.items():
                if lay == layer:
                    if value.shape != z[:, head].shape:
                        raise ValueError(f"patch for head ({lay}, {head}) has shape {tuple(value.shape)}, "
                                         f"the head's output is {tuple(z[:, head].shape)}")
                    z[:, head] = value                                     # (B, T, Dh)
            return z
        return hook

    handles = [layers[i].hook_z.register_forward_hook(replace(i)) for i in {lay for lay, _ in patches}]
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def patch_residual(model: nn.Module, layer: int, position: int, value: torch.Tensor):
    """Within the block, the residual stream entering block ``layer`` (``layer == L``: leaving the
    last block) at ``position`` is replaced by ``value`` (B, C)."""
    blocks = model.blocks
    if not 0 <= layer <= len(blocks):
        raise ValueError(f"layer must be in 0..{len(blocks)} (L = {len(blocks)} blocks), got {layer}")

    def swap(x):
        if not -x.shape[1] <= position < x.shape[1] or value.shape != (x.shape[0], x.shape[2]):
            raise ValueError(f"patch_residual: value must be (B, C) = {(x.shape[0], x.shape[2])} at a position "
                             f"in 0..{x.shape[1] - 1}, got {tuple(value.shape)} at {position}")
        x = x.clone()
        x[:, position] = value                                             # (B, C)
        return x

    if layer < len(blocks):
        handle = blocks[layer].register_forward_pre_hook(lambda m, args: (swap(args[0]),) + args[1:])
    else:
        handle = blocks[-1].register_forward_hook(lambda m, args, out: swap(out))
    try:
        yield model
    finally:
        handle.remove()


@torch.no_grad()
def cache_residual(model: nn.Module, *args) -> list[torch.Tensor]:
    """The residual stream (B, T, C) entering each block and leaving the last: L + 1 tensors."""
    stream: list[torch.Tensor] = []
    handles = [b.register_forward_pre_hook(lambda m, a: stream.append(a[0].detach().clone()))
               for b in model.blocks]
    handles.append(model.blocks[-1].register_forward_hook(lambda m, a, out: stream.append(out.detach().clone())))
    try:
        model(*args)
    finally:
        for handle in handles:
            handle.remove()
    return stream


def restored_fraction(patched: float, clean: float, corrupt: float) -> float:
    """(patched − corrupt) / (clean − corrupt): 1 = the patch brings the clean answer fully back."""
    if abs(clean - corrupt) < 1e-9:
        raise ValueError(f"clean ({clean}) and corrupted ({corrupt}) metrics are equal: nothing to restore")
    return (patched - corrupt) / (clean - corrupt)


@torch.no_grad()
def patching_effects(model: nn.Module, clean: torch.Tensor, corrupt: torch.Tensor,
                     metric: Callable[[torch.Tensor], float]) -> dict[str, torch.Tensor]:
    """Restored fraction for every head {"heads": (L, H)} and every residual site
    {"residual": (L + 1, T)}, patching clean activations into the corrupted run.

    ``metric(output) -> float`` reads the model's output, e.g. the clean answer's logit minus the
    corrupted answer's logit at the position that changed.
    """
    if clean.shape != corrupt.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and corrupt {tuple(corrupt.shape)} must match")
    clean_out, heads = cache_head_outputs(model, clean)
    stream = cache_residual(model, clean)
    m_clean, m_corrupt = metric(clean_out), metric(model(corrupt))
    layers = attention_layers(model)
    by_head = torch.zeros(len(layers), layers[0].n_heads)
    for layer, z in enumerate(heads):
        for head in range(z.shape[-2]):
            with patch_heads(model, {(layer, head): z[..., head, :]}):
                by_head[layer, head] = restored_fraction(metric(model(corrupt)), m_clean, m_corrupt)
    by_site = torch.zeros(len(stream), clean.shape[1])
    for layer, resid in enumerate(stream):
        for position in range(clean.shape[1]):
            with patch_residual(model, layer, position, resid[:, position]):
                by_site[layer, position] = restored_fraction(metric(model(corrupt)), m_clean, m_corrupt)
    return {"heads": by_head, "residual": by_site}


@contextmanager
def uniform_attention(model: nn.Module, *, layers: Iterable[int] | None = None):
    """Within the block, every attention row of ``layers`` (indices, default all) is uniform over the
    keys it may attend to.

    The scores are set to 0 at ``hook_scores``, before the mask and the softmax, so the model's own
    mask decides which keys a row spreads over (a weight that merely underflowed to 0 is still a key
    it may see). Only the "functional" backend routes its output through the hooks, so the block
    switches the chosen layers to it and restores each one's backend after.
    """
    all_layers = attention_layers(model)
    chosen = list(range(len(all_layers))) if layers is None else [int(i) for i in layers]
    for i in chosen:
        if not -len(all_layers) <= i < len(all_layers):
            raise ValueError(f"layer {i} does not exist: the model has {len(all_layers)} attention layers")
    picked = [all_layers[i] for i in dict.fromkeys(i % len(all_layers) for i in chosen)]
    backends = [attn.backend for attn in picked]

    def flatten(module, inputs, scores):
        return torch.zeros_like(scores)                                   # (B, H, T, S): softmax -> uniform

    handles = [attn.hook_scores.register_forward_hook(flatten) for attn in picked]
    for attn in picked:
        attn.backend = "functional"
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
        for attn, backend in zip(picked, backends, strict=True):
            attn.backend = backend
