"""Positional encodings: what tells attention, which ignores order, where each token stands.

- ``SinusoidalPositionalEncoding`` adds fixed sines and cosines (Vaswani et al. 2017);
- ``LearnedPositionalEncoding`` adds a trained vector per position (GPT-2, ViT);
- ``rope`` rotates queries and keys by their positions (Su et al. 2021), so their dot products
  depend on the offset only;
- ``positional_encoding(kind, ...)`` picks one by name.

Dimension legend: B batch, T positions, C model width, D head width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._validate import check_floating


class SinusoidalPositionalEncoding(nn.Module):
    """Adds PE(t, 2i) = sin(t / 10000^(2i/C)), PE(t, 2i+1) = cos(t / 10000^(2i/C)) (Vaswani et al. 2017)."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"sinusoidal encodings pair sin and cos, so d_model must be even, got {d_model}")
        position = torch.arange(max_len).unsqueeze(1)                              # (T_max, 1)
        inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2) / d_model)  # (C/2,)
        pe = torch.zeros(max_len, d_model)                                         # (T_max, C)
        pe[:, 0::2] = torch.sin(position * inv_freq)                               # (T_max, 1) * (C/2,) -> (T_max, C/2)
        pe[:, 1::2] = torch.cos(position * inv_freq)
        self.register_buffer("pe", pe, persistent=False)  # a function of position, not a weight

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x (B, T, C) at positions offset .. offset + T - 1 (offset > 0: new tokens after a KV cache)."""
        _check_length(x, self.pe.shape[0], offset)
        return x + self.pe[offset:offset + x.shape[1]].to(x.dtype)  # (B, T, C) + (T, C) -> (B, T, C)


class LearnedPositionalEncoding(nn.Module):
    """Adds a trained vector per position (GPT-2, ViT)."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # (T_max, C)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x (B, T, C) at positions offset .. offset + T - 1 (offset > 0: new tokens after a KV cache)."""
        _check_length(x, self.weight.shape[0], offset)
        return x + self.weight[offset:offset + x.shape[1]]  # (B, T, C) + (T, C) -> (B, T, C)


def _check_length(x: torch.Tensor, max_len: int, offset: int = 0) -> None:
    if x.dim() != 3:
        raise ValueError(f"positional encodings take x of shape (B, T, C), got {tuple(x.shape)}")
    if offset < 0:
        raise ValueError(f"offset must be ≥ 0, got {offset}")
    if offset + x.shape[1] > max_len:
        at = f" at offset {offset}" if offset else ""
        raise ValueError(f"sequence length T={x.shape[1]}{at} exceeds the encoding's max_len={max_len}")


def rope(x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021): rotate each pair of columns (2i, 2i+1) of x by t·ω_i.

    x (..., T, D) with D even; ``positions`` (T,) defaults to 0..T-1; ω_i = base^(-2i/D), the
    sinusoidal encoding's frequencies. Applied to q and k (not v), a rotation by t·ω and one by s·ω
    leave q·k depending on t - s only: ⟨R_t q, R_s k⟩ = ⟨q, R_{s-t} k⟩.
    """
    check_floating(x=x)
    if x.dim() < 2:
        raise ValueError(f"rope takes x of shape (..., T, D), got {tuple(x.shape)}")
    T, D = x.shape[-2], x.shape[-1]
    if D % 2:
        raise ValueError(f"rope rotates pairs of columns, so the last dim must be even, got shape {tuple(x.shape)}")
    positions = torch.arange(T, device=x.device) if positions is None else positions.to(x.device)
    if positions.shape != (T,):
        raise ValueError(f"positions must have shape (T,) = ({T},), got {tuple(positions.shape)}")
    # The angle t·ω reaches T (radians): in bf16 its rounding alone moves it by up to T/256, so
    # the trig and the rotation run in fp32 (fp64 for fp64 input) and only the result is cast.
    # No float64 step for low-precision input: MPS has no float64.
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv_freq = base ** (-torch.arange(0, D, 2, device=x.device, dtype=compute) / D)  # (D/2,)
    angle = positions.to(compute)[:, None] * inv_freq                # (T, 1) * (D/2,) -> (T, D/2)
    cos, sin = angle.cos(), angle.sin()                              # (T, D/2)
    even, odd = x[..., 0::2].to(compute), x[..., 1::2].to(compute)   # (..., T, D/2) each
    out = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)  # (..., T, D/2, 2)
    return out.flatten(-2).to(x.dtype)                               # (..., T, D): pairs back in place


def positional_encoding(kind: str, d_model: int, max_len: int) -> nn.Module:
    """"sinusoidal", "learned" or "none" (identity: the model then sees a bag of tokens)."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len)
    if kind == "learned":
        return LearnedPositionalEncoding(d_model, max_len)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"positional encoding {kind!r} is not one of 'sinusoidal', 'learned', 'none'")
