"""Lesson 10 exercises: LoRA's forward pass, and merging the update into the weight for inference.

Notation as in ``attnflex_lab.adapt.lora``: W₀ (C_out, C_in), A (r, C_in), B (C_out, r), scale α / r.
"""

import torch

from . import Exercise, register

# --- 10.lora_forward ------------------------------------------------------------------------------


def lora_forward(x: torch.Tensor, w0: torch.Tensor, b0: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 alpha: float) -> torch.Tensor:
    """h = x W₀ᵀ + b₀ + (α / r) · (x Aᵀ) Bᵀ for x (N, C_in); never forms the (C_out, C_in) product B A."""
    r = a.shape[0]
    base = x @ w0.T + b0                   # (N, C_in) @ (C_in, C_out) -> (N, C_out)
    low = x @ a.T                          # (N, C_in) @ (C_in, r) -> (N, r): r numbers per input
    return base + (alpha / r) * low @ b.T  # (N, r) @ (r, C_out) -> (N, C_out)


def _lora_inputs(gen: torch.Generator):
    c_in, c_out = (int(torch.randint(4, 12, (1,), generator=gen)) for _ in range(2))
    r = int(torch.randint(1, 4, (1,), generator=gen))
    n = int(torch.randint(2, 6, (1,), generator=gen))

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    alpha = float(torch.randint(1, 17, (1,), generator=gen))
    return rand(n, c_in), rand(c_out, c_in), rand(c_out), rand(r, c_in), rand(c_out, r), alpha


register(Exercise(
    id="10.lora_forward",
    prompt="Write lora_forward(x, w0, b0, a, b, alpha): the frozen layer x W0ᵀ + b0 plus LoRA's update "
           "(alpha / r)(x Aᵀ)Bᵀ, with r = a.shape[0].",
    solution=lora_forward,
    make_inputs=_lora_inputs,
    hint="the update is scaled by alpha / r, not alpha; A (r, C_in) comes first (x @ a.T is (N, r)), "
         "then B (C_out, r): (x @ a.T) @ b.T.",
))

# --- 10.merge_lora ------------------------------------------------------------------------------


def merge_lora(w0: torch.Tensor, a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """W = W₀ + (α / r) · B A, (C_out, C_in): one matrix, so inference costs what the base model costs."""
    r = a.shape[0]
    return w0 + (alpha / r) * b @ a        # (C_out, r) @ (r, C_in) -> (C_out, C_in)


def _merge_inputs(gen: torch.Generator):
    _, w0, _, a, b, alpha = _lora_inputs(gen)
    return w0, a, b, alpha


register(Exercise(
    id="10.merge_lora",
    prompt="Write merge_lora(w0, a, b, alpha): the merged weight W0 + (alpha / r) B A, shape (C_out, C_in).",
    solution=merge_lora,
    make_inputs=_merge_inputs,
    hint="B A (not A B) has the weight's shape (C_out, C_in); scale by alpha / r with r = a.shape[0].",
))
