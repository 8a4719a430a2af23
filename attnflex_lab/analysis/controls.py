"""Controls that test a reading of a model against its own assumptions.

Dimension legend: B batch, ch channels, H×W pixels, L layers, Hd heads, T queries, S keys.

- ``fill_images``: what a deletion curve puts where a region was. A fill equal to integrated
  gradients' baseline (0) is the one test IG is built to pass; a mean-pixel or blurred fill asks
  the same question without favouring it (ROAR, Hooker et al. 2019, and Petsiuk et al. 2018 blur).
- ``randomized_copy``: the model with every weight re-drawn (Adebayo et al. 2018's sanity check).
  An explanation of *this model's* decision must change when the model is replaced by noise; one
  that stays the same is reading the input (edges, ink), not the model.
- ``adversarial_attention``: after Jain & Wallace (2019), search for an attention row as different
  as possible from the learned one that leaves the prediction (almost) unchanged. If one exists,
  the learned map is not *the* reason for the prediction.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .interp import attention_layers

FILLS = ("zero", "mean", "blur")


def fill_images(images: torch.Tensor, kind: str, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Fill images for ``explain.mask_patches``: (1, ch, H, W) for "zero" and "mean" (each channel's
    mean pixel over ``reference``, default ``images``), (B, ch, H, W) for "blur" (a 3×3 binomial
    blur of each image, so a removed patch keeps its neighbourhood's low frequencies)."""
    if images.dim() != 4:
        raise ValueError(f"images must be (B, ch, H, W), got {tuple(images.shape)}")
    if kind not in FILLS:
        raise ValueError(f"fill kind {kind!r} is not one of {FILLS}")
    if kind == "zero":
        return torch.zeros_like(images[:1])                                   # (1, ch, H, W)
    if kind == "mean":
        reference = images if reference is None else reference
        if reference.dim() != 4 or reference.shape[1:] != images.shape[1:]:
            raise ValueError(f"reference must be (N, {', '.join(map(str, images.shape[1:]))}), "
                             f"got {tuple(reference.shape)}")
        channel_mean = reference.to(images).mean(dim=(0, 2, 3), keepdim=True)  # (1, ch, 1, 1)
        return channel_mean.expand_as(images[:1]).contiguous()                 # (1, ch, H, W)
    ch = images.shape[1]
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=images.dtype, device=images.device) / 4
    kernel = (taps[:, None] * taps[None, :]).expand(ch, 1, 3, 3)             # (ch, 1, 3, 3)
    padded = nn.functional.pad(images, (1, 1, 1, 1), mode="replicate")     # (B, ch, H + 2, W + 2)
    return nn.functional.conv2d(padded, kernel, groups=ch)                # (B, ch, H, W)


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` (eval mode) with every parameter re-drawn: modules with
    ``reset_parameters`` use their own initialiser, any other parameter (a [CLS] token, learned
    positions) is drawn from N(0, 0.02²). The original is untouched."""
    clone = copy.deepcopy(model)
    devices = {p.device for p in clone.parameters()}
    with torch.random.fork_rng(devices=[d for d in devices if d.type == "cuda"]):
        torch.manual_seed(seed)
        reset = set()
        for module in clone.modules():
            if hasattr(module, "reset_parameters") and module is not clone:
                module.reset_parameters()
                reset.update(id(p) for p in module.parameters(recurse=False))
        with torch.no_grad():
            for param in clone.parameters():
                if id(param) not in reset:
                    param.normal_(0.0, 0.02)
    return clone.eval()


def _jensen_shannon(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """JSD(p ‖ q) in nats over the last dim (at most ln 2 ≈ 0.693)."""
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a * (a.clamp_min(1e-12).log() - b.clamp_min(1e-12).log())).sum(-1)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def adversarial_attention(model: nn.Module, inputs: torch.Tensor, *, layer: int = -1, query: int = 0,
                          max_output_change: float = 0.01, steps: int = 100, lr: float = 0.5,
                          penalty: float = 100.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Search, per example, for an attention row of ``query`` in ``layer`` (every head) that is as far
    from the learned one as possible (Jensen–Shannon divergence) while the output distribution moves by
    at most ``max_output_change`` (total variation distance), after Jain & Wallace (2019).

    The row's scores get a learned offset δ (B, Hd, S) added at ``hook_scores`` (so masked keys stay
    masked); Adam maximises JSD − penalty·relu(TVD − max_output_change). Returns per example (B,):
    "jsd" (mean over heads, of the best row that kept TVD within bounds; 0 if none did) and "tvd"
    (its output change), plus "learned" and "adversarial" rows (B, Hd, S).
    """
    if model.training:
        raise ValueError("call model.eval() first: dropout would change the output by itself")
    attn = attention_layers(model)[layer]
    backend = attn.backend
    params = [p.requires_grad for p in model.parameters()]
    offset: torch.Tensor | None = None
    seen: dict[str, torch.Tensor] = {}

    def shift(module, args, scores):                                   # scores (B, Hd, T, S)
        if offset is None:
            return None
        scores = scores.clone()
        scores[:, :, query] = scores[:, :, query] + offset
        return scores

    def record(module, args, pattern):
        seen["row"] = pattern[:, :, query]                               # (B, Hd, S)

    attn.backend = "functional"                                          # routes through the hooks
    handles = [attn.hook_scores.register_forward_hook(shift), attn.hook_pattern.register_forward_hook(record)]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            base = model(inputs).softmax(-1)                             # (B, K)
            learned = seen["row"].clone()                                # (B, Hd, S)
        # JSD is flat at δ = 0 (its minimum), so the search starts from a random nudge.
        gen = torch.Generator().manual_seed(seed)
        offset = torch.randn(learned.shape, generator=gen, dtype=learned.dtype).to(learned.device)
        offset.requires_grad_()
        best_jsd = torch.zeros(len(inputs), device=inputs.device, dtype=learned.dtype)
        best_tvd = torch.zeros_like(best_jsd)
        best_row = learned.clone()
        optimizer = torch.optim.Adam([offset], lr=lr)
        for _ in range(steps):
            probs = model(inputs).softmax(-1)                            # (B, K)
            tvd = 0.5 * (probs - base).abs().sum(-1)                     # (B,)
            jsd = _jensen_shannon(seen["row"], learned).mean(-1)         # (B, Hd) -> (B,)
            with torch.no_grad():
                better = (tvd <= max_output_change) & (jsd > best_jsd)
                best_jsd = torch.where(better, jsd, best_jsd)
                best_tvd = torch.where(better, tvd, best_tvd)
                best_row[better] = seen["row"][better]
            loss = (-jsd + penalty * (tvd - max_output_change).clamp_min(0)).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        for handle in handles:
            handle.remove()
        attn.backend = backend
        for p, flag in zip(model.parameters(), params, strict=True):
            p.requires_grad_(flag)
    return {"jsd": best_jsd, "tvd": best_tvd, "learned": learned, "adversarial": best_row.detach()}
