"""Metrics: accuracy, exact match, alignment accuracy, attention entropy and calibration (ECE).

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


def attention_on_target(weights: torch.Tensor, target: torch.Tensor) -> float:
    """Mean attention mass on the right source position(s), over the steps that have one.

    weights (N, T, S). ``target`` is either true positions (N, T) long, -1 where a step has no true
    position (not counted), or a bool mask (N, T, S) of every acceptable position (e.g. for sort,
    every input holding the right digit; a step with no True is not counted).
    Unlike ``alignment_accuracy`` (is the argmax right?), this says how much weight is spent there.
    """
    if target.dtype == torch.bool:
        if weights.dim() != 3 or target.shape != weights.shape:
            raise ValueError(f"need weights (N, T, S) and a bool target mask of the same shape, got "
                             f"{tuple(weights.shape)} and {tuple(target.shape)}")
        defined = target.any(-1)                                               # (N, T)
        on_target = (weights * target).sum(-1)                                 # (N, T, S) -> (N, T)
    else:
        if weights.dim() != 3 or target.shape != weights.shape[:2]:
            raise ValueError(f"need weights (N, T, S) and true positions (N, T), got "
                             f"{tuple(weights.shape)} and {tuple(target.shape)}")
        if (target >= weights.shape[-1]).any():
            raise ValueError(f"true positions go up to {int(target.max())}, beyond the "
                             f"{weights.shape[-1]} source positions")
        defined = target >= 0                                                  # (N, T)
        on_target = weights.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # (N, T)
    if not defined.any():
        raise ValueError("no step has a right source position")
    return on_target[defined].double().mean().item()


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, *, n_bins: int = 10) -> dict:
    """Predictions grouped by confidence into ``n_bins`` equal-width bins over [0, 1].

    probs (N, C) predicted probabilities (rows sum to 1); labels (N,). Returns lists of length n_bins:
    ``confidence`` (mean top probability), ``accuracy`` and ``count`` per bin (NaN means where empty),
    plus ``edges`` (n_bins + 1). A bin holds confidences in (lo, hi]; the first also holds 0.
    """
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"need probs (N, C) and labels (N,), got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")
    if labels.numel() == 0:
        raise ValueError("calibration of an empty set is undefined")
    if not isinstance(n_bins, int) or n_bins <= 0:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    if (probs < 0).any() or not torch.allclose(probs.sum(-1), torch.ones_like(probs[:, 0]), atol=1e-4):
        raise ValueError("probs must be probabilities (non-negative rows that sum to 1); pass "
                         "softmax(logits), not logits")
    confidence, predicted = probs.double().max(-1)                            # (N,), (N,)
    correct = (predicted == labels).double()                                  # (N,)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    which = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, n_bins - 1)  # (N,) bin ids
    out = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        members = which == b
        count = int(members.sum())
        out["count"].append(count)
        out["confidence"].append(confidence[members].mean().item() if count else float("nan"))
        out["accuracy"].append(correct[members].mean().item() if count else float("nan"))
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, *, n_bins: int = 10) -> float:
    """ECE (Naeini et al. 2015; Guo et al. 2017): Σ_b (n_b / N) · |accuracy_b − confidence_b|.

    0 for a perfectly calibrated classifier; equal-width bins of the top-class probability."""
    bins = reliability_bins(probs, labels, n_bins=n_bins)
    total = sum(bins["count"])
    return sum(n / total * abs(a - c) for n, a, c in zip(bins["count"], bins["accuracy"],
                                                         bins["confidence"], strict=True) if n)


# --- proper scores, intervals and the standard remedy (lesson 09) ------------------------------------
# ECE is a threshold score: it bins confidences and can be gamed (a constant prediction of the base
# rate has ECE 0). Negative log-likelihood and the Brier score are *proper*: they are minimised only
# by the true probabilities, so they belong beside it (Gneiting & Raftery 2007; Guo et al. 2017).

def _check_probs(probs: torch.Tensor, labels: torch.Tensor) -> None:
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"need probs (N, C) and labels (N,), got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")
    if (probs < 0).any() or not torch.allclose(probs.sum(-1), torch.ones_like(probs[:, 0]), atol=1e-4):
        raise ValueError("probs must be probabilities (non-negative rows that sum to 1); pass "
                         "softmax(logits), not logits")


def negative_log_likelihood(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean −log p(label) over the N examples of probs (N, C) (probabilities floored at 1e-12)."""
    _check_probs(probs, labels)
    return -probs.double().gather(1, labels[:, None]).clamp_min(1e-12).log().mean().item()


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over examples of Σ_c (p_c − 1[c = label])², between 0 (certain and right) and 2."""
    _check_probs(probs, labels)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).double()   # (N, C)
    return ((probs.double() - onehot) ** 2).sum(1).mean().item()


def bootstrap_interval(score, probs: torch.Tensor, labels: torch.Tensor, *, resamples: int = 1000,
                       level: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``score(probs, labels)`` over test examples resampled with
    replacement (Efron & Tibshirani 1993): how much the number moves with the test set alone."""
    _check_probs(probs, labels)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    gen = torch.Generator().manual_seed(seed)
    n = len(labels)
    draws = torch.tensor([score(probs[idx], labels[idx])
                          for idx in torch.randint(0, n, (resamples, n), generator=gen)])
    tail = (1 - level) / 2
    return draws.quantile(tail).item(), draws.quantile(1 - tail).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, steps: int = 200) -> float:
    """The T > 0 that minimises the NLL of softmax(logits / T) on (held-out) logits (N, C): temperature
    scaling (Guo et al. 2017), one parameter, so the predicted class never changes."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"need logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    logits = logits.detach().double()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)   # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return log_t.exp().item()
