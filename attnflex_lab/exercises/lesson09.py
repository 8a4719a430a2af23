"""Lesson 09 exercises: the expected calibration error (ECE), and PGD's projection onto an L2 ball.

The model answers use plain torch so ``show_solution`` prints them for the learner; they compute the
same numbers as ``attnflex_lab.metrics.expected_calibration_error`` and
``attnflex_lab.analysis.robustness.project_l2`` (the tests check that). Each check switches those
off while the learner's code runs (``guard.py``), so a wrapper around them is refused.
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
    hints=("confidence = probs.max(-1).values, correct = (argmax == label); bin b holds confidences in "
           "(b/n_bins, (b+1)/n_bins].",
           "per non-empty bin: its share n_b / N times |mean(correct) − mean(confidence)| in that bin.",
           "confidence[members].mean() and correct[members].mean() per bin; sum share × |gap| over bins."),
    guards=("attnflex_lab.metrics:expected_calibration_error", "attnflex_lab.metrics:reliability_bins"),
    atol=1e-10, rtol=1e-8,
))


# --- 09.project_l2 --------------------------------------------------------------------------------


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """The closest point to each δ_n in the ball ‖δ_n‖₂ ≤ ε (n indexes dim 0): δ_n · min(1, ε / ‖δ_n‖₂)."""
    norms = delta.flatten(1).norm(dim=1)                                # (N,): one length per example
    shrink = torch.where(norms > eps, eps / norms.clamp_min(1e-30), torch.ones_like(norms))  # (N,); δ = 0 stays
    return delta * shrink.view(-1, *([1] * (delta.dim() - 1)))          # (N, ...) * (N, 1, ..., 1)


def _l2_inputs(gen: torch.Generator):
    n = int(torch.randint(4, 9, (1,), generator=gen))
    eps = float(torch.empty((), dtype=torch.float64).uniform_(0.5, 1.5, generator=gen))
    radius = eps * (0.2 + 1.6 * torch.rand(n, 1, 1, generator=gen, dtype=torch.float64))  # lengths around ε
    radius[0], radius[1], radius[2] = 0.0, 0.5 * eps, 1.6 * eps   # zero, inside and outside, every trial
    delta = torch.randn(n, 3, 5, generator=gen, dtype=torch.float64)             # (N, 3, 5): e.g. tiny images
    return delta / delta.flatten(1).norm(dim=1).view(-1, 1, 1) * radius, eps     # example n has length radius_n


register(Exercise(
    id="09.project_l2",
    prompt="Derive and write project_l2(delta, eps): for each example n (dim 0), the point of the ball "
           "‖d‖₂ ≤ eps nearest to delta[n] (the norm over all of delta[n]'s entries). Same shape as delta.",
    solution=project_l2,
    make_inputs=_l2_inputs,
    hint="inside the ball a point is its own projection; outside, the nearest point lies on the ray "
         "through delta[n] at radius eps: delta[n] · eps / ‖delta[n]‖₂. One norm per example, not one "
         "for the whole batch or one per entry; a zero delta must stay 0 (no division by 0).",
    hints=("split into two cases: ‖δ‖₂ ≤ ε (already in the ball) and ‖δ‖₂ > ε.",
           "outside: for any d in the ball, ‖δ − d‖ ≥ ‖δ‖ − ‖d‖ ≥ ‖δ‖ − ε (triangle inequality); which d "
           "makes both steps equalities?",
           "d* = δ · ε / ‖δ‖₂, so in both cases δ · min(1, ε / ‖δ‖₂), with ‖δ_n‖ = delta.flatten(1).norm(dim=1)."),
    guards=("attnflex_lab.analysis.robustness:project_l2", "attnflex_lab.analysis.robustness:_project"),
    atol=1e-10, rtol=1e-8,
))
