"""Attention ops with hand-derived backward passes: one ``torch.autograd.Function`` per op.

Each op computes the same values as its autograd reference (``functional``, or plain torch for the
read-out and the loss); what differs is the backward, written out by hand right under the forward
(its formula in the docstring), with no autograd inside it. Upstream gradients are written g (or
dO, dP, ...): the gradient of the loss ℒ with respect to that output. Symbols and shapes follow the
notation table of lesson 00: T queries, S keys, D query/key width, Dv value width, Z the scores
(S is a count, never the score matrix), ρ = rowsum(dP ⊙ P) the softmax backward's row term.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ._validate import (
    check_attention_inputs,
    check_floating,
    check_mask,
    check_pool_inputs,
    check_readout_inputs,
    check_scale,
)
from .functional import default_scale, masked_softmax


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
    except RuntimeError:  # a device type autocast does not know ("meta": shape-only runs) never autocasts
        return False


def _apply(function: type[torch.autograd.Function], *args):
    """Run an op; under autocast, run it in float32 with autocast off.

    The hand-written backward passes assume one dtype throughout: under autocast a forward matmul
    would come out in bf16 while softmax stays float32, and backward would mix them. Autocast itself
    keeps softmax-like ops in float32 for accuracy, so these ops do the same.
    """
    device_type = next(a.device.type for a in args if isinstance(a, torch.Tensor))
    if not _autocast_enabled(device_type):
        return function.apply(*args)
    args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    with torch.autocast(device_type, enabled=False):
        return function.apply(*args)


def _fused_masked_softmax_(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last dim with torch's fused kernel; overwrites ``scores`` when masked.

    Faster than ``functional.masked_softmax`` on large (T, S) scores. Scores from finite q and k are
    finite, so only the mask can empty a row; those rows (NaN from the kernel) are set to 0.
    The fill runs unconditionally: asking first whether any row is empty would wait for the device.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    probs = torch.softmax(scores.masked_fill_(~mask, float("-inf")), dim=-1)
    empty_row = ~mask.any(dim=-1, keepdim=True)  # (..., T, 1) or smaller: it broadcasts
    return probs.masked_fill_(empty_row, 0.0)


# --- softmax -------------------------------------------------------------------------------------

class SoftmaxFunction(torch.autograd.Function):
    """p = softmax(x) along ``dim``; masked entries get p = 0."""

    @staticmethod
    def forward(ctx, x, mask, dim):
        probs = masked_softmax(x, mask, dim)  # the reference forward; same shape as x
        ctx.dim = dim
        ctx.save_for_backward(probs)
        return probs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_probs):
        """dx = Jᵀ g = (diag(p) − p pᵀ) g = p ⊙ (g − ⟨g, p⟩).

        The Jacobian ∂p_i/∂x_j = p_i (δ_ij − p_j) is symmetric, so the vector–Jacobian product
        needs one dot product per row, never the (n, n) matrix. Masked entries have p = 0, so
        their gradient is 0; a fully masked row is all 0.
        """
        (probs,) = ctx.saved_tensors
        inner = (grad_probs * probs).sum(dim=ctx.dim, keepdim=True)  # ⟨g, p⟩ per row
        return probs * (grad_probs - inner), None, None


def softmax(x: torch.Tensor, dim: int = -1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax with a hand-written backward; ``mask`` (bool, True = keep) broadcasts to x."""
    check_floating(x=x)
    check_mask(mask, x.shape, x.device, what="softmax input")
    return _apply(SoftmaxFunction, x, mask, dim)


# --- attention pooling with a learned context vector ---------------------------------------------

class AttentionPoolFunction(torch.autograd.Function):
    """z = e w_a, α = softmax(z), c = Σ_t α_t e_t. Returns (c (..., d), α (..., T))."""

    @staticmethod
    def forward(ctx, e, w_a, mask):
        scores = e @ w_a                                  # (..., T, d) @ (d,) -> (..., T)
        alpha = masked_softmax(scores, mask)               # (..., T)
        context = (alpha.unsqueeze(-2) @ e).squeeze(-2)   # (..., 1, T) @ (..., T, d) -> (..., d)
        ctx.save_for_backward(e, w_a, alpha)
        ctx.set_materialize_grads(False)                  # an unused output sends None, not zeros
        return context, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_context, grad_alpha):
        """With dc = ∂ℒ/∂c and dα_ext = ∂ℒ/∂α (from any use of the returned α):

        dα = e dc + dα_ext            (each α_t multiplies e_t in c)
        dz = α ⊙ (dα − ⟨dα, α⟩)       (the softmax VJP)
        de_t = α_t dc + dz_t w_a      (e_t enters c directly and through its score)
        dw_a = Σ dz_t e_t             (summed over every position and leading index)
        """
        e, w_a, alpha = ctx.saved_tensors
        grad_alpha_total = torch.zeros_like(alpha) if grad_alpha is None else grad_alpha
        if grad_context is not None:
            # (..., T, d) @ (..., d, 1) -> (..., T)
            grad_alpha_total = grad_alpha_total + (e @ grad_context.unsqueeze(-1)).squeeze(-1)
        inner = (grad_alpha_total * alpha).sum(-1, keepdim=True)  # (..., 1)
        grad_scores = alpha * (grad_alpha_total - inner)          # dz: (..., T)
        grad_e = grad_scores.unsqueeze(-1) * w_a         # (..., T, 1) * (d,) -> (..., T, d)
        if grad_context is not None:
            # (..., T, 1) * (..., 1, d) -> (..., T, d)
            grad_e = grad_e + alpha.unsqueeze(-1) * grad_context.unsqueeze(-2)
        # (..., 1, T) @ (..., T, d) -> (..., 1, d), then sum the leading dims -> (d,)
        grad_w_a = (grad_scores.unsqueeze(-2) @ e).reshape(-1, e.shape[-1]).sum(0)
        return grad_e, grad_w_a, None


def attention_pool(e: torch.Tensor, w_a: torch.Tensor, mask: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Same as ``functional.attention_pool``, with a hand-written backward for e and w_a."""
    check_pool_inputs(e, w_a, mask)
    return _apply(AttentionPoolFunction, e, w_a, mask)


# --- linear read-out and loss (so a pooling model has a hand backward end to end) ----------------

class PooledReadoutFunction(torch.autograd.Function):
    """y = w_oᵀ U c for every c in a batch: c (..., d), U (d_o, d), w_o (d_o,) -> y (...).

    The arguments are named ``u`` (U) and ``v`` (w_o); v here is the read-out vector, not a value.
    """

    @staticmethod
    def forward(ctx, c, u, v):
        hidden = c @ u.T      # (..., d) @ (d, d_o) -> (..., d_o)
        ctx.save_for_backward(c, u, v)
        return hidden @ v     # (..., d_o) @ (d_o,) -> (...)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        """With g_n = ∂ℒ/∂y_n and m = Σ_n g_n c_n (one vector, shape (d,)):

        dc_n = g_n Uᵀ w_o,   dU = w_o mᵀ,   dw_o = U m.
        """
        c, u, v = ctx.saved_tensors
        grad_c = grad_y.unsqueeze(-1) * (u.T @ v)             # (..., 1) * (d,) -> (..., d)
        weighted_c = (grad_y.unsqueeze(-1) * c).reshape(-1, c.shape[-1]).sum(0)  # m, (d,)
        grad_u = torch.outer(v, weighted_c)                    # dU: (d_o,) ⊗ (d,) -> (d_o, d)
        grad_v = u @ weighted_c                                # dw_o: (d_o, d) @ (d,) -> (d_o,)
        return grad_c, grad_u, grad_v


def pooled_readout(c: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """y = w_oᵀ U c (``u`` is U, ``v`` is w_o) with a hand-written backward for c, U and w_o."""
    check_readout_inputs(c, u, v)
    return _apply(PooledReadoutFunction, c, u, v)


class MSELossFunction(torch.autograd.Function):
    """ℒ = mean((y − t)²) over every entry."""

    @staticmethod
    def forward(ctx, pred, target):
        diff = pred - target
        ctx.save_for_backward(diff)
        return diff.pow(2).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        """dy = g · 2 (y − t) / N,  dt = −dy."""
        (diff,) = ctx.saved_tensors
        grad_pred = grad_loss * 2.0 * diff / diff.numel()
        return grad_pred, -grad_pred


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error with a hand-written backward; shapes must match exactly."""
    check_floating(pred=pred, target=target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have "
                         f"the same shape (nothing is broadcast)")
    return _apply(MSELossFunction, pred, target)


# --- scaled dot-product attention --------------------------------------------------------------

class AttentionFunction(torch.autograd.Function):
    """Z = s·Q Kᵀ, P = masked_softmax(Z), O = P V. Returns (O (..., T, Dv), P (..., T, S))."""

    @staticmethod
    def forward(ctx, q, k, v, mask, scale):
        # Scale q, not the scores: (T, D) multiplications instead of (T, S).
        # (..., T, D) @ (..., D, S) -> (..., T, S)
        scores = (q * scale) @ k.transpose(-2, -1)
        weights = _fused_masked_softmax_(scores, mask)     # (..., T, S)
        del scores
        out = weights @ v  # (..., T, S) @ (..., S, Dv) -> (..., T, Dv)
        ctx.scale = scale
        ctx.save_for_backward(q, k, v, weights, out)
        ctx.set_materialize_grads(False)                   # unused weights send None, not zeros
        return out, weights

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_weights):
        """With dO = ∂ℒ/∂O and dP_ext = ∂ℒ/∂P (from any use of the returned weights):

        dV = Pᵀ dO
        dP = dO Vᵀ + dP_ext
        dZ = P ⊙ (dP − ρ),   ρ = rowsum(dP ⊙ P)   (one number per row)
        dQ = s · dZ K,   dK = s · dZᵀ Q

        ρ = rowsum(dO Vᵀ ⊙ P) = rowsum(dO ⊙ O) because O = P V, so when the weights get no gradient
        the (T, S) product dP ⊙ P is never formed (the trick FlashAttention uses; Dao et al. 2022).
        Masked entries have P = 0, hence dZ = 0; a fully masked row is all zeros.
        """
        q, k, v, weights, out = ctx.saved_tensors
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        grad_q = grad_k = grad_v = None
        if grad_out is not None and need_v:
            # (..., S, T) @ (..., T, Dv) -> (..., S, Dv)
            grad_v = weights.transpose(-2, -1) @ grad_out
        if not (need_q or need_k) or (grad_out is None and grad_weights is None):
            return grad_q, grad_k, grad_v, None, None
        if grad_out is not None:
            grad_p = grad_out @ v.transpose(-2, -1)  # (..., T, Dv) @ (..., Dv, S) -> (..., T, S)
            if grad_weights is None:
                row_dot = (grad_out * out).sum(-1, keepdim=True)  # ρ = rowsum(dO ⊙ O): (..., T, 1)
            else:
                grad_p += grad_weights
                row_dot = (grad_p * weights).sum(-1, keepdim=True)  # ρ = rowsum(dP ⊙ P): (..., T, 1)
        else:
            grad_p = grad_weights.clone()                   # never write into an incoming gradient
            row_dot = (grad_p * weights).sum(-1, keepdim=True)
        grad_scores = grad_p.sub_(row_dot).mul_(weights)    # dZ, in place over dP: (..., T, S)
        if need_q:
            grad_q = (grad_scores @ k).mul_(ctx.scale)  # (..., T, S) @ (..., S, D) -> (..., T, D)
        if need_k:
            # (..., S, T) @ (..., T, D) -> (..., S, D)
            grad_k = (grad_scores.transpose(-2, -1) @ q).mul_(ctx.scale)
        return grad_q, grad_k, grad_v, None, None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
              scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention with a hand-written backward; same values as
    ``functional.attention``. Returns ``(out (..., T, Dv), weights (..., T, S))``; gradients flow
    into q, k and v from both outputs."""
    check_attention_inputs(q, k, v, mask)
    scale = default_scale(q) if scale is None else check_scale(scale)
    return _apply(AttentionFunction, q, k, v, mask, scale)


__all__ = ["AttentionFunction", "AttentionPoolFunction", "MSELossFunction",
           "PooledReadoutFunction", "SoftmaxFunction", "attention", "attention_pool", "mse_loss",
           "pooled_readout", "softmax"]
