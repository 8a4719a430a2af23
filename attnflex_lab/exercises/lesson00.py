"""Lesson 00 exercise: softmax with a temperature."""

import torch

from . import Exercise, register


def softmax_with_temperature(scores: torch.Tensor, tau: float) -> torch.Tensor:
    """p_i = exp(s_i / τ) / Σ_j exp(s_j / τ), over the last dim."""
    scaled = scores / tau                                  # (..., S)
    scaled = scaled - scaled.amax(dim=-1, keepdim=True)    # shift invariance: avoids overflow
    exp = scaled.exp()
    return exp / exp.sum(dim=-1, keepdim=True)


def _inputs(gen: torch.Generator):
    scores = torch.randn(3, 6, generator=gen) * 4
    tau = float(torch.empty(1).uniform_(0.2, 3.0, generator=gen))
    return scores, tau


register(Exercise(
    id="00.softmax_temperature",
    prompt="Write softmax_with_temperature(scores, tau): the softmax of scores / tau over the last dim.",
    solution=softmax_with_temperature,
    make_inputs=_inputs,
    hint="divide by tau before exponentiating, and normalise each row (dim=-1) so it sums to 1.",
    hints=("the temperature rescales the scores before anything else happens to them.",
           "exponentiate scores / tau, then divide each row by its own sum (dim=-1, keepdim=True).",
           "subtract the row max of scores / tau before exp: the result is the same and never overflows."),
    guards=("attnflex_lab.functional:masked_softmax", "attnflex_lab.ops:softmax"),
))
