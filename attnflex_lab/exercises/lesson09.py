"""Lesson 09 exercise: the expected calibration error (ECE) of a classifier's probabilities.

The model answer uses plain torch so ``show_solution`` prints it for the learner; it computes the
same number as ``attnflex_lab.metrics.expected_calibration_error`` (the tests check that).
"""

import torch

from . import Exercise, register


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Σ_b (n_b / N) · |accuracy_b − confidence_b| over equal-width confidence bins (lo, hi]; 0-dim."""
    confidence, predicted = probs.max(dim=-1)                          # (N,), (N,)
    correct = (predicted == labels).to(probs.dtype)                    # (N,)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=probs.dtype)
    which = (torch.bucketize(confidence, edges) - 1).clamp(0, n_bins - 1)  # (N,): bin of each prediction
    ece = torch.zeros((), dtype=probs.dtype)
    for b in range(n_bins):
        members = which == b
        if members.any():  # weight each bin by its share of the predictions: empty bins count 0
            gap = correct[members].mean() - confidence[members].mean()
            ece = ece + members.to(probs.dtype).mean() * gap.abs()
    return ece


def _calibration_inputs(gen: torch.Generator):
    n, classes = int(torch.randint(50, 200, (1,), generator=gen)), int(torch.randint(2, 6, (1,), generator=gen))
    sharpness = float(torch.rand((), generator=gen)) * 4 + 0.5
    probs = torch.softmax(sharpness * torch.randn(n, classes, generator=gen, dtype=torch.float64), -1)  # (N, C)
    labels = torch.randint(0, classes, (n,), generator=gen)            # (N,)
    n_bins = int(torch.randint(5, 16, (1,), generator=gen))
    return probs, labels, n_bins


register(Exercise(
    id="09.expected_calibration_error",
    prompt="Write expected_calibration_error(probs, labels, n_bins) -> 0-dim tensor: group predictions "
           "by their top probability into n_bins equal-width bins (lo, hi] of [0, 1], and sum "
           "(share of predictions in the bin) × |accuracy in the bin − mean confidence in the bin|.",
    solution=expected_calibration_error,
    make_inputs=_calibration_inputs,
    hint="confidence is the top probability and 'correct' compares its argmax with the label. Weight "
         "each bin by n_b / N (a plain mean over bins lets a bin of 1 prediction count as much as one "
         "of 100), skip empty bins, and take the absolute gap per bin before summing.",
    atol=1e-10, rtol=1e-8,
))
