"""Lesson 05 exercises: the pieces of multi-head self-attention."""

import math

import torch

from . import Exercise, register


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, H, T, C / H): each head gets its own slice of the width."""
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)  # (B, T, H, Dh) -> (B, H, T, Dh)


def _split_inputs(gen: torch.Generator):
    n_heads = int(torch.randint(1, 5, (1,), generator=gen))
    width = n_heads * int(torch.randint(2, 6, (1,), generator=gen))
    return torch.randn(2, 5, width, generator=gen), n_heads


register(Exercise(
    id="05.split_heads",
    prompt="Write split_heads(x, n_heads): reshape x (B, T, C) to (B, H, T, C // H).",
    solution=split_heads,
    make_inputs=_split_inputs,
    hint="view as (B, T, H, C // H) first, then swap the T and H dims; a plain reshape to "
         "(B, H, T, Dh) mixes positions and heads.",
))


def causal_mask(T: int) -> torch.Tensor:
    """(T, T) bool, True where query i may attend to key j, i.e. j ≤ i."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def _mask_inputs(gen: torch.Generator):
    return (int(torch.randint(1, 9, (1,), generator=gen)),)


register(Exercise(
    id="05.causal_mask",
    prompt="Write causal_mask(T): a (T, T) bool tensor, True where key j ≤ query i.",
    solution=causal_mask,
    make_inputs=_mask_inputs,
    hint="True means 'may attend' here: the lower triangle, diagonal included (torch.tril).",
    compare=lambda got, exp: (None if isinstance(got, torch.Tensor) and got.dtype == torch.bool
                              and got.shape == exp.shape and torch.equal(got, exp)
                              else f"expected a bool tensor of shape {tuple(exp.shape)} equal to "
                                   f"the lower triangle, got {_describe(got)}"),
))


def sinusoidal_encoding(T: int, d_model: int) -> torch.Tensor:
    """(T, C): PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C))."""
    position = torch.arange(T).unsqueeze(1)                                      # (T, 1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2) / d_model)  # (C/2,)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(position * inv_freq)                                 # (T, C/2)
    pe[:, 1::2] = torch.cos(position * inv_freq)
    return pe


def _pe_inputs(gen: torch.Generator):
    return int(torch.randint(2, 20, (1,), generator=gen)), 2 * int(torch.randint(1, 9, (1,), generator=gen))


register(Exercise(
    id="05.sinusoidal_encoding",
    prompt="Write sinusoidal_encoding(T, d_model): the (T, d_model) sin/cos table of Vaswani et al.",
    solution=sinusoidal_encoding,
    make_inputs=_pe_inputs,
    hint="even columns 2i hold sin(t·ω_i), odd columns 2i+1 hold cos(t·ω_i), with "
         "ω_i = 10000^(-2i/d_model): the same frequency for a sin/cos pair.",
    atol=1e-5,
))


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"dtype {x.dtype}, shape {tuple(x.shape)}"
    return type(x).__name__
