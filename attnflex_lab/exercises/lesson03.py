"""Lesson 03 exercises: region features from a conv feature map, a confusion matrix, and the
gradient of an attention-pooled logit with respect to the region scores (a derivation)."""

import torch

from . import Exercise, register

_F64 = torch.float64


def feature_map_to_regions(fmap: torch.Tensor) -> torch.Tensor:
    """(B, d, h, w) -> (B, T = h·w, d): one feature vector per region, regions in row-major order."""
    return fmap.flatten(2).transpose(1, 2)  # (B, d, h, w) -> (B, d, T) -> (B, T, d)


def _regions_inputs(gen: torch.Generator):
    h, w = (int(v) for v in torch.randint(2, 5, (2,), generator=gen))
    return (torch.randn(3, 5, h, w, generator=gen),)


register(Exercise(
    id="03.feature_map_to_regions",
    prompt="Write feature_map_to_regions(fmap): turn a conv feature map (B, d, h, w) into region "
           "features e (B, h*w, d), regions in row-major order.",
    solution=feature_map_to_regions,
    make_inputs=_regions_inputs,
    hint="flatten the two spatial dims into one (B, d, T), then swap the last two dims; a plain "
         "reshape to (B, T, d) mixes channels and positions.",
    hints=("which axis holds the channels, and which two the place? The answer keeps d last.",
           "torch.flatten(fmap, 2) makes (B, d, h·w), row-major: cell (i, j) lands at i·w + j.",
           "then .transpose(1, 2): (B, d, T) -> (B, T, d). A reshape(B, -1, d) mixes channels and places."),
))


def confusion_counts(labels: torch.Tensor, predictions: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts: entry [i, j] = how many images of true class i were predicted as j."""
    flat = labels * num_classes + predictions                      # (N,) one cell id per image
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _confusion_inputs(gen: torch.Generator):
    num_classes = int(torch.randint(3, 7, (1,), generator=gen))
    labels = torch.randint(0, num_classes, (40,), generator=gen)
    noise = torch.randint(0, num_classes, (40,), generator=gen)
    keep = torch.rand(40, generator=gen) < 0.6                      # mostly right, some errors
    return labels, torch.where(keep, labels, noise), num_classes


register(Exercise(
    id="03.confusion_counts",
    prompt="Write confusion_counts(labels, predictions, num_classes): a (num_classes, num_classes) tensor whose entry "
           "[i, j] counts the images of true class i that were predicted as class j.",
    solution=confusion_counts,
    make_inputs=_confusion_inputs,
    hint="rows are the true classes and columns the predictions (not the other way round); "
         "the diagonal holds the correct answers.",
    hints=("start from a (C, C) zero tensor of int64 and add 1 per image at [true, predicted].",
           "rows are the true classes and columns the predictions (not the other way round).",
           "one id per image, labels · C + predictions, counted with torch.bincount(minlength=C²), "
           "then reshaped to (C, C)."),
    guards=("attnflex_lab.viz.images:confusion_matrix",),
))


def pooled_logit_score_grad(e: torch.Tensor, w_a: torch.Tensor, W: torch.Tensor,
                            k: torch.Tensor) -> torch.Tensor:
    """∂y_k/∂z_t for z_t = e_t·w_a, α = softmax(z), c = Σ_t α_t e_t, y = W c + b.

    y_k = Σ_t α_t (W_k·e_t) + b_k is an α-weighted mean of the regions' own logits ℓ_t = W_k·e_t, so
    ∂y_k/∂z_t = α_t (ℓ_t − Σ_t' α_t' ℓ_t') = α_t (W_k·e_t − W_k·c): a region's score raises the logit
    of class k exactly when its own logit beats the pooled one. e (B, T, d), w_a (d,), W (C, d),
    k (B,) a class per image. Returns (B, T).
    """
    alpha = torch.softmax(e @ w_a, dim=-1)                             # (B, T, d) @ (d,) -> (B, T)
    row = W[k]                                                         # W_k per image: (B, d)
    own = (e @ row.unsqueeze(-1)).squeeze(-1)                          # ℓ_t = W_k·e_t: (B, T)
    pooled = (alpha * own).sum(-1, keepdim=True)                       # W_k·c: (B, 1)
    return alpha * (own - pooled)                                      # (B, T)


def _pooled_inputs(gen: torch.Generator):
    B, T, d, C = 3, 6, 5, 4                                            # distinct sizes: a wrong axis fails
    e = torch.randn(B, T, d, generator=gen, dtype=_F64)
    w_a = torch.randn(d, generator=gen, dtype=_F64)
    W = torch.randn(C, d, generator=gen, dtype=_F64)
    return e, w_a, W, torch.randint(0, C, (B,), generator=gen)


register(Exercise(
    id="03.pooled_logit_grad",
    prompt="Derive and write pooled_logit_score_grad(e, w_a, W, k): the gradient of the logit y_k of class "
           "k[b] with respect to every region score z_t = e_t·w_a, for α = softmax(z), c = Σ α_t e_t, "
           "y = W c + b. Returns (B, T).",
    solution=pooled_logit_score_grad,
    make_inputs=_pooled_inputs,
    hint="y_k = Σ_t α_t ℓ_t + b_k with ℓ_t = W_k·e_t; the softmax Jacobian gives "
         "∂y_k/∂z_t = α_t (ℓ_t − Σ_t' α_t' ℓ_t').",
    hints=("hold e fixed: only α depends on the scores here. Write y_k = Σ_t α_t ℓ_t + b_k with ℓ_t = W_k·e_t.",
           "lesson 02's softmax VJP: for y = Σ_t α_t ℓ_t, ∂y/∂z_t = α_t (ℓ_t − Σ_t' α_t' ℓ_t').",
           "ℓ = (e @ W[k].unsqueeze(-1)).squeeze(-1) is (B, T); the answer is α ⊙ (ℓ − rowsum(α ⊙ ℓ))."),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))
