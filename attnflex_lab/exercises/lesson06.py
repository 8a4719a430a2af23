"""Lesson 06 exercises: counting FLOPs and measuring how much of the hardware a model uses."""

import torch

from . import Exercise, register


def flops_per_token(n_params: int, n_layers: int, d_model: int, seq_len: int) -> float:
    """Training FLOPs per token: 6·N (weights, forward + backward) + 12·L·C·T (attention scores)."""
    return 6.0 * n_params + 12.0 * n_layers * d_model * seq_len


def _flops_inputs(gen: torch.Generator):
    def draw(low, high):
        return int(torch.randint(low, high, (1,), generator=gen))
    return draw(10_000, 100_000_000), draw(1, 48), 64 * draw(1, 32), 2 ** draw(5, 12)


register(Exercise(
    id="06.flops_per_token",
    prompt="Write flops_per_token(n_params, n_layers, d_model, seq_len) = 6N + 12·L·C·T "
           "(N = n_params, L = n_layers, C = d_model, T = seq_len).",
    solution=flops_per_token,
    make_inputs=_flops_inputs,
    hint="2 FLOPs per multiply-add, times 3 for forward + backward gives 6 per parameter; the "
         "attention term is 12 · layers · width · context length.",
    hints=("a multiply-add is 2 FLOPs; every weight is used once per token in the forward pass.",
           "the backward pass costs about twice the forward (gradients for inputs and for weights): 6N.",
           "per layer, q·k and the weighted sum each cost 2·C·T per token forward; times 3 for training."),
    guards=("attnflex_lab.perf.flops:flops_per_token",),
    compare=lambda got, exp: (None if isinstance(got, (int, float)) and abs(got - exp) <= 1e-9 * exp
                              else f"got {got!r}, expected {exp:.6g}"),
))


def model_flops_utilisation(tokens_per_second: float, flops_per_tok: float, peak_tflops: float
                            ) -> float:
    """MFU = achieved FLOP/s / peak FLOP/s, with the peak given in TFLOP/s (10^12 FLOP/s)."""
    return tokens_per_second * flops_per_tok / (peak_tflops * 1e12)


def _mfu_inputs(gen: torch.Generator):
    tps = float(torch.empty(1).uniform_(1e3, 1e6, generator=gen))
    fpt = float(torch.empty(1).uniform_(1e6, 1e9, generator=gen))
    peak = float(torch.tensor([65.0, 121.0, 312.0, 989.0])[torch.randint(0, 4, (1,), generator=gen)])
    return tps, fpt, peak


register(Exercise(
    id="06.mfu",
    prompt="Write model_flops_utilisation(tokens_per_second, flops_per_tok, peak_tflops).",
    solution=model_flops_utilisation,
    make_inputs=_mfu_inputs,
    hint="achieved FLOP/s = tokens/s × FLOPs/token; the peak is in TFLOP/s, so multiply it by 1e12.",
    hints=("MFU is a ratio of two rates: what the model did per second over what the chip could do.",
           "achieved FLOP/s = tokens_per_second × flops_per_tok.",
           "the peak is given in TFLOP/s: multiply it by 1e12 before dividing."),
    guards=("attnflex_lab.perf.flops:mfu",),
    compare=lambda got, exp: (None if isinstance(got, (int, float)) and abs(got - exp) <= 1e-9 * abs(exp)
                              else f"got {got!r}, expected {exp:.6g}"),
))
