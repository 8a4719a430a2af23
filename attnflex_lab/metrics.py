"""Metrics: accuracy, exact match, alignment accuracy and attention entropy.

Each returns a Python float (a mean over the examples that count) and checks its inputs' shapes.
"""

from __future__ import annotations

import torch


def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have the "
                         f"same shape")


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of correct labels. ``predictions`` are class ids (N,) or logits (N, C)."""
    if predictions.dim() == labels.dim() + 1:
        predictions = predictions.argmax(-1)              # (N, C) -> (N,)
    _check_same_shape("predictions", predictions, "labels", labels)
    if labels.numel() == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return (predictions == labels).float().mean().item()


def exact_match(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of sequences (rows of (N, T) token ids) that are entirely right."""
    _check_same_shape("predicted", predicted, "target", target)
    if predicted.dim() != 2:
        raise ValueError(f"exact_match wants (N, T) token ids, got {tuple(predicted.shape)}")
    return (predicted == target).all(dim=1).float().mean().item()


def alignment_accuracy(weights: torch.Tensor, true_positions: torch.Tensor, *,
                       tolerance: int = 0) -> float:
    """How often the most-attended source position is within ``tolerance`` of the true one.

    weights (N, T, S) attention, one row per output step; true_positions (N, T) source indices,
    -1 where no source position is copied (those steps are not counted).
    """
    if weights.dim() != 3 or true_positions.shape != weights.shape[:2]:
        raise ValueError(f"need weights (N, T, S) and true_positions (N, T), got "
                         f"{tuple(weights.shape)} and {tuple(true_positions.shape)}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    defined = true_positions >= 0                          # (N, T)
    if not defined.any():
        raise ValueError("no step has a defined true alignment (all -1)")
    if (true_positions >= weights.shape[-1]).any():
        raise ValueError(f"true_positions go up to {int(true_positions.max())}, beyond the "
                         f"{weights.shape[-1]} source positions")
    argmax = weights.argmax(-1)                            # (N, T, S) -> (N, T)
    close = (argmax - true_positions).abs() <= tolerance   # (N, T)
    return close[defined].float().mean().item()


def attention_entropy(weights: torch.Tensor, *, dim: int = -1, normalized: bool = False) -> float:
    """Mean entropy H(α) = −Σ_j α_j log α_j of attention rows, in nats (0·log 0 counts as 0).

    ``normalized=True`` divides by log(S) so uniform attention scores 1 and one-hot attention 0.
    """
    if not weights.is_floating_point():
        raise TypeError(f"weights must be floating point, got {weights.dtype}")
    if (weights < 0).any():
        raise ValueError("attention weights must be non-negative")
    p = weights.double()
    terms = torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))  # α log α
    entropy = -terms.sum(dim)                              # (..., S) -> (...)
    if normalized:
        size = weights.shape[dim]
        if size < 2:
            raise ValueError("normalized entropy needs at least 2 positions")
        entropy = entropy / torch.log(torch.tensor(float(size), dtype=torch.float64))
    return entropy.mean().item()
