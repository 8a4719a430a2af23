"""Lesson 10 exercises: LoRA's forward pass, merging the update for inference, and the prefix identity.

Notation as in ``attnflex_lab.adapt.lora``: W₀ (C_out, C_in), A (r, C_in), B (C_out, r), scale α / r.
Each check switches the package's own implementation off while the learner's code runs
(``guard.py``): ``LoRAQKV``'s forward and merge, ``adapt.prefix.prefix_decomposition`` and the
reference attention.
"""

import torch

from . import Exercise, register

# LoRA's own forward and merge in the package, switched off while the learner's code runs.
_LORA_GUARDS = ("attnflex_lab.adapt.lora:LoRAQKV.forward", "attnflex_lab.adapt.lora:LoRAQKV.merge",
                "attnflex_lab.adapt.lora:LoRAQKV.delta_weight")

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
    hints=("two terms: the frozen layer x W0ᵀ + b0, and the low-rank update through A then B.",
           "x @ a.T is (N, r): r numbers per input; then @ b.T gives (N, C_out).",
           "x @ w0.T + b0 + (alpha / r) * (x @ a.T) @ b.T, with r = a.shape[0]."),
    guards=_LORA_GUARDS,
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
    hints=("h = x W0ᵀ + (α/r)(x Aᵀ)Bᵀ = x (W0 + (α/r) B A)ᵀ: read the merged weight off.",
           "B A is (C_out, r) @ (r, C_in) = (C_out, C_in), the weight's shape; A B would be (r, r).",
           "w0 + (alpha / a.shape[0]) * b @ a."),
    guards=_LORA_GUARDS,
))

# --- 10.prefix_decomposition ----------------------------------------------------------------------


def prefix_decomposition(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_k: torch.Tensor,
                         prefix_v: torch.Tensor, scale: float):
    """(λ, attention over the prefix alone, attention over the keys alone), so that attention over
    [prefix_k; k], [prefix_v; v] = λ · prefix part + (1 − λ) · base part (He et al. 2022)."""
    scores_p = scale * q @ prefix_k.T                   # (B, T, D) @ (D, P) -> (B, T, P)
    scores_k = scale * q @ k.transpose(-2, -1)          # (B, T, D) @ (B, D, S) -> (B, T, S)
    lse_p = scores_p.logsumexp(dim=-1)                  # log Z_P: (B, T)
    lse_k = scores_k.logsumexp(dim=-1)                  # log Z_K: (B, T)
    gate = torch.sigmoid(lse_p - lse_k)                 # Z_P / (Z_P + Z_K), computed without overflow
    prefix_out = scores_p.softmax(dim=-1) @ prefix_v    # (B, T, P) @ (P, Dv) -> (B, T, Dv)
    base_out = scores_k.softmax(dim=-1) @ v             # (B, T, S) @ (B, S, Dv) -> (B, T, Dv)
    return gate, prefix_out, base_out


def _prefix_inputs(gen: torch.Generator):
    B, T, S, P, D, Dv = 2, 5, 7, int(torch.randint(1, 5, (1,), generator=gen)), 4, 3

    def rand(*shape, spread=1.0):
        return spread * torch.randn(*shape, generator=gen, dtype=torch.float64)

    scale = float(torch.empty((), dtype=torch.float64).uniform_(0.3, 1.5, generator=gen))
    q = rand(B, T, D, spread=3.0)
    q[0, 0] *= 4000 / q[0, 0].norm()   # one query with scores in the thousands: exp() of them overflows
    return q, rand(B, S, D), rand(B, S, Dv), rand(P, D), rand(P, Dv), scale


register(Exercise(
    id="10.prefix_decomposition",
    prompt="Derive and write prefix_decomposition(q, k, v, prefix_k, prefix_v, scale) -> (gate, prefix_out, "
           "base_out): attention of q over the keys [prefix_k; k] and values [prefix_v; v] equals "
           "gate · prefix_out + (1 − gate) · base_out, where prefix_out attends over the prefix alone and "
           "base_out over k, v alone (no prefix). gate has shape q.shape[:-1].",
    solution=prefix_decomposition,
    make_inputs=_prefix_inputs,
    hint="write softmax's denominator over [prefix; keys] as Z_P + Z_K (Z_P = Σ_p exp(s q·P_K,p), Z_K "
         "likewise over k): the prefix terms are (Z_P / Z) × a softmax over the prefix alone. So "
         "gate = Z_P / (Z_P + Z_K) = sigmoid(logsumexp(prefix scores) − logsumexp(key scores)); "
         "exp() of the scores directly overflows on large queries.",
    hints=("write the output for one query as Σ_j exp(z_j) u_j / Σ_j exp(z_j) over all P + S positions, "
           "and split both sums into prefix positions and key positions.",
           "with Z_P and Z_K the two partial denominators, the prefix terms are Z_P / (Z_P + Z_K) times "
           "softmax over the prefix scores alone, applied to prefix_v; the key terms likewise.",
           "gate = sigmoid(lse_P − lse_K), lse_P = (scale * q @ prefix_k.T).logsumexp(-1), "
           "lse_K = (scale * q @ k.transpose(-2, -1)).logsumexp(-1)."),
    guards=("attnflex_lab.adapt.prefix:prefix_decomposition", "attnflex_lab.functional:attention",
            "attnflex_lab.ops:attention", "attnflex_lab.adapt.prefix:KVPrefix.forward"),
    atol=1e-10, rtol=1e-8,
))
