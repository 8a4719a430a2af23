"""Online softmax and tiled (FlashAttention-2) attention in plain PyTorch, with a hand backward.

Attention written as ``softmax(s·Q Kᵀ) V`` builds the (T, S) score and weight matrices; at T = S =
2048 that is 16 MiB per head in float32, and autograd keeps several of them for the backward.
FlashAttention (Dao et al. 2022; FlashAttention-2, Dao 2023) never builds them:

- **forward**: walk over key blocks with the *online softmax* (Milakov & Gimelshein 2018), keeping per
  query row a running max m, a running sum l (ℓ) and an unnormalised output; save only O and the row
  log-sum-exp lse = m + log l;
- **backward**: recompute each block's weights P = exp(s·Q Kᵀ − lse) from the saved lse, and use
  ρ = rowsum(dO ⊙ O) in place of rowsum(dP ⊙ P) (the identity derived in ``ops.AttentionFunction``).

Symbols follow lesson 00's notation table: what the FlashAttention papers write S, L and D (the scores,
the row log-sum-exp, the row term) is Z, lse and ρ here, because S counts keys, L layers and D is a width.

Memory for the backward drops from O(T·S) to O(T·D). Shapes and masks follow ``functional.attention``:
q (..., T, D), k (..., S, D), v (..., S, Dv), a bool mask broadcastable to (..., T, S) with True = may
attend; a fully masked row gives zeros and zero gradients; ``causal`` aligns to the bottom right
(query i sees keys j ≤ i + S − T, as ``modules.causal_mask``) and skips blocks that are all masked.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .._validate import check_attention_inputs, check_floating, check_scale
from ..functional import default_scale

# Among the fastest of the 64–512 blocks tried at T = 512, D = 64 on 2 CPU cores (forward + backward);
# a (128, 256) float32 tile per (batch, head) is 128 KiB, small beside the O(T·D) tensors.
DEFAULT_BLOCK_Q = 128
DEFAULT_BLOCK_K = 256


# --- the online softmax --------------------------------------------------------------------------

def online_softmax_update(m: torch.Tensor, l: torch.Tensor, x_block: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the streaming softmax: fold a block of scores x_block (..., b) into (m, l) (...).

    m_new = max(m, max_j x_j),   l_new = l · e^(m − m_new) + Σ_j e^(x_j − m_new).
    The factor e^(m − m_new) rescales the old sum to the new reference max. Where everything seen so
    far is −∞ (masked), the reference is 0 so that e^(−∞ − 0) = 0 rather than NaN.
    """
    m_new = torch.maximum(m, x_block.amax(dim=-1))           # (...)
    ref = _finite_or_zero(m_new)                              # (...)
    l_new = l * torch.exp(m - ref) + torch.exp(x_block - ref.unsqueeze(-1)).sum(dim=-1)
    return m_new, l_new


def online_softmax(x: torch.Tensor, block: int) -> torch.Tensor:
    """softmax(x) over the last dim, reading x in blocks of ``block`` columns: one pass for (m, l),
    then p = e^(x − m) / l. Equal to ``torch.softmax(x, -1)``; fully −∞ rows give zeros."""
    check_floating(x=x)
    _check_block("block", block)
    if x.dim() == 0:
        raise ValueError("x must have at least one dim (..., n), got a 0-d tensor")
    m = torch.full(x.shape[:-1], float("-inf"), dtype=x.dtype, device=x.device)  # (...)
    l = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)                 # (...)
    for j in range(0, x.shape[-1], block):
        m, l = online_softmax_update(m, l, x[..., j:j + block])
    ref = _finite_or_zero(m).unsqueeze(-1)                                        # (..., 1)
    return torch.exp(x - ref) / torch.where(l > 0, l, torch.ones_like(l)).unsqueeze(-1)


def _finite_or_zero(m: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


# --- tiles ---------------------------------------------------------------------------------------

def _check_block(name: str, block) -> int:
    if isinstance(block, bool) or not isinstance(block, int):
        raise TypeError(f"{name} must be a positive int, got {type(block).__name__}")
    if block < 1:
        raise ValueError(f"{name} must be a positive int, got {block}")
    return block


def key_blocks(i0: int, i1: int, T: int, S: int, block_k: int, causal: bool):
    """(j0, j1, partly_masked) for the key blocks that query rows i0..i1−1 must visit.

    With ``causal``, row i sees keys j ≤ i + S − T: blocks right of the last row's limit are skipped
    (never computed), and blocks left of the first row's limit need no mask at all.
    """
    last = S if not causal else min(S, i1 + S - T)  # keys ≥ last are masked for every row here
    for j0 in range(0, max(last, 0), block_k):
        j1 = min(j0 + block_k, S)
        yield j0, j1, causal and j1 - 1 > i0 + S - T


def _block_allowed(mask, causal, i0, i1, j0, j1, T, S, device):
    """The (…, bq, bk) bool mask of one tile (True = may attend), or None when all is allowed."""
    allowed = None
    if mask is not None:
        allowed = mask[..., i0:i1, j0:j1]
    if causal:
        rows = torch.arange(i0, i1, device=device).unsqueeze(-1)   # (bq, 1)
        cols = torch.arange(j0, j1, device=device)                 # (bk,)
        tri = cols <= rows + (S - T)                               # (bq, bk), bottom-right aligned
        allowed = tri if allowed is None else allowed & tri
    return allowed


def expand_mask(mask, T: int, S: int):
    """A mask viewed as (..., T, S) (stride 0 where it broadcasts), so tiles can be sliced from it."""
    if mask is None:
        return None
    if mask.dim() == 1:
        mask = mask.unsqueeze(0)                           # (S,) -> (1, S)
    return mask.expand(*mask.shape[:-2], T, S)


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """m, ℓ, the output accumulator and lse stay in float32 for bf16/fp16 inputs (float64 stays float64):
    a bf16 running sum ℓ over thousands of keys keeps only 8 bits, as the fused kernels' fp32 registers do not."""
    return torch.promote_types(dtype, torch.float32)


def tiled_forward(q, k, v, mask, causal, scale, block_q, block_k, io=None):
    """The FlashAttention-2 forward loop. Returns ``(out (..., T, Dv), lse (..., T))``.

    Plain torch ops: run it under autograd and every tile's temporaries are recorded (the lesson's
    counter-example); ``FlashAttentionFunction`` runs it without autograd and supplies the backward.
    Each tile is read "into fast memory" in the accumulator dtype (float32 for bf16/fp16), and O is
    cast back once at the end. ``io`` (an ``kernels.io_model.IOCounter``) counts every tile read from
    and written to slow memory, for the lesson's IO model.
    """
    T, S = q.shape[-2], k.shape[-2]
    acc_dtype = accumulator_dtype(q.dtype)
    mask = expand_mask(mask, T, S)
    lead = q.shape[:-2]
    out = q.new_empty(*lead, T, v.shape[-1])                       # (..., T, Dv), the input dtype
    lse = q.new_empty(*lead, T, dtype=acc_dtype)                   # (..., T)
    for i0 in range(0, T, block_q):
        i1 = min(i0 + block_q, T)
        q_i = _load(io, q[..., i0:i1, :], acc_dtype) * scale       # (..., bq, D)
        m = q_i.new_full((*lead, i1 - i0), float("-inf"))          # running max    (..., bq)
        l = q_i.new_zeros((*lead, i1 - i0))                        # running sum    (..., bq)
        acc = q_i.new_zeros((*lead, i1 - i0, v.shape[-1]))         # Σ e^(z−m) v    (..., bq, Dv)
        for j0, j1, partly in key_blocks(i0, i1, T, S, block_k, causal):
            k_j = _load(io, k[..., j0:j1, :], acc_dtype)           # (..., bk, D)
            v_j = _load(io, v[..., j0:j1, :], acc_dtype)           # (..., bk, Dv)
            z = q_i @ k_j.transpose(-2, -1)                        # Z_IJ: (..., bq, D) @ (..., D, bk) -> (..., bq, bk)
            allowed = _block_allowed(mask, partly, i0, i1, j0, j1, T, S, q.device)
            if allowed is not None:
                z = z.masked_fill(~allowed, float("-inf"))
            m_new = torch.maximum(m, z.detach().amax(dim=-1))      # (..., bq); O is invariant to m
            ref = _finite_or_zero(m_new)
            rescale = torch.exp(m - ref)                           # e^(m_old − m_new): (..., bq)
            p = torch.exp(z - ref.unsqueeze(-1))                   # (..., bq, bk), unnormalised
            l = l * rescale + p.sum(dim=-1)
            acc = acc * rescale.unsqueeze(-1) + p @ v_j            # (..., bq, bk) @ (..., bk, Dv)
            m = m_new
        has_keys = l > 0                                           # False for a fully masked row
        out[..., i0:i1, :] = acc / torch.where(has_keys, l, torch.ones_like(l)).unsqueeze(-1)
        # lse = m + log l. An empty row gets lse = +∞, so the backward's e^(z − lse) recomputes its zeros.
        lse[..., i0:i1] = torch.where(has_keys, _finite_or_zero(m) + torch.log(l),
                                      torch.full_like(l, float("inf")))
        _store(io, out[..., i0:i1, :], lse[..., i0:i1])
    return out, lse


def _load(io, tile: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if io is not None:
        io.read(tile)
    return tile.to(dtype)


def _store(io, *tiles: torch.Tensor) -> None:
    if io is not None:
        for tile in tiles:
            io.write(tile)


def query_blocks(j0: int, j1: int, T: int, S: int, block_q: int, causal: bool):
    """(i0, i1, partly_masked) for the query blocks that visit key block j0..j1−1: the transpose of
    ``key_blocks`` (same tiles, same skips), for the backward that loops over key blocks outside."""
    for i0 in range(0, T, block_q):
        i1 = min(i0 + block_q, T)
        if causal and j0 >= i1 + S - T:                            # every row of this block is left of j0
            continue
        yield i0, i1, causal and j1 - 1 > i0 + S - T


class FlashAttentionFunction(torch.autograd.Function):
    """O = softmax(s·Q Kᵀ, masked) V, computed tile by tile; saves Q, K, V (inputs), O and lse only.

    ``order`` picks the backward's loop order: ``"kv_outer"`` is FlashAttention-2's Algorithm 2 (each key
    block's dK, dV stay in fast memory, dQ is accumulated), ``"q_outer"`` the forward's order (each query
    block's dQ stays, dK and dV are accumulated). Same tiles, same sums, in a different order.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, block_q, block_k, order="kv_outer"):
        out, lse = tiled_forward(q, k, v, mask, causal, scale, block_q, block_k)
        ctx.save_for_backward(q, k, v, out, lse)  # O(T·D + S·D) numbers; never a (T, S) tensor
        ctx.mask, ctx.causal, ctx.scale, ctx.blocks, ctx.order = mask, causal, scale, (block_q, block_k), order
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        """Per tile (rows i of block I, keys j of block J), with ρ_i = rowsum(dO ⊙ O)_i:

        P_IJ  = exp(s·Q_I K_Jᵀ − lse_I)          recomputed; lse = m + log l from the forward
        dV_J += P_IJᵀ dO_I                        (bk, bq) @ (bq, Dv)
        dP_IJ = dO_I V_Jᵀ                         (bq, Dv) @ (Dv, bk)
        dZ_IJ = P_IJ ⊙ (dP_IJ − ρ_I)              softmax backward, rowsum(dP ⊙ P) = rowsum(dO ⊙ O)
        dQ_I += s · dZ_IJ K_J,   dK_J += s · dZ_IJᵀ Q_I

        ρ needs only O and dO: rowsum(dP ⊙ P)_i = Σ_j (dO_i · v_j) P_ij = dO_i · Σ_j P_ij v_j = dO_i · O_i.
        Masked entries have P = 0 (z = −∞), so they get no gradient; an empty row has lse = +∞, so its
        whole row of P is 0. Masked tiles that the forward skipped are skipped here as well. Every tile
        and every gradient sum is in the accumulator dtype (float32 for bf16/fp16); cast back at the end.
        """
        q, k, v, out, lse = ctx.saved_tensors
        acc_dtype = lse.dtype
        T, S = q.shape[-2], k.shape[-2]
        state = _BackwardState(
            q=q.to(acc_dtype) * ctx.scale, k=k.to(acc_dtype), v=v.to(acc_dtype), grad_out=grad_out.to(acc_dtype),
            lse=lse[..., None], rho=(grad_out.to(acc_dtype) * out.to(acc_dtype)).sum(dim=-1, keepdim=True),
            mask=expand_mask(ctx.mask, T, S), causal=ctx.causal, T=T, S=S)   # ρ = rowsum(dO ⊙ O): (..., T, 1)
        grad_q, grad_k, grad_v = (torch.zeros_like(t) for t in (state.q, state.k, state.v))
        block_q, block_k = ctx.blocks
        if ctx.order == "kv_outer":     # Algorithm 2: dK_J, dV_J are finished when the inner loop ends
            for j0, j1, _ in key_blocks(0, T, T, S, block_k, False):
                for i0, i1, partly in query_blocks(j0, j1, T, S, block_q, ctx.causal):
                    state.tile(i0, i1, j0, j1, partly, grad_q, grad_k, grad_v)
        else:                           # the forward's order: dQ_I is finished when the inner loop ends
            for i0 in range(0, T, block_q):
                i1 = min(i0 + block_q, T)
                for j0, j1, partly in key_blocks(i0, i1, T, S, block_k, ctx.causal):
                    state.tile(i0, i1, j0, j1, partly, grad_q, grad_k, grad_v)
        return (grad_q.mul_(ctx.scale).to(q.dtype), grad_k.to(k.dtype), grad_v.to(v.dtype),
                None, None, None, None, None, None)


@dataclass
class _BackwardState:
    """The backward's inputs, in the accumulator dtype, and the work of one tile."""

    q: torch.Tensor          # (..., T, D), pre-multiplied by the scale
    k: torch.Tensor          # (..., S, D)
    v: torch.Tensor          # (..., S, Dv)
    grad_out: torch.Tensor   # dO (..., T, Dv)
    lse: torch.Tensor        # (..., T, 1)
    rho: torch.Tensor        # rowsum(dO ⊙ O): (..., T, 1)
    mask: torch.Tensor | None
    causal: bool
    T: int
    S: int

    def tile(self, i0, i1, j0, j1, partly, grad_q, grad_k, grad_v):
        q_i, do_i = self.q[..., i0:i1, :], self.grad_out[..., i0:i1, :]   # (..., bq, D), (..., bq, Dv)
        k_j, v_j = self.k[..., j0:j1, :], self.v[..., j0:j1, :]            # (..., bk, D), (..., bk, Dv)
        z = q_i @ k_j.transpose(-2, -1)                                   # (..., bq, bk)
        allowed = _block_allowed(self.mask, partly, i0, i1, j0, j1, self.T, self.S, z.device)
        if allowed is not None:
            z.masked_fill_(~allowed, float("-inf"))
        p = torch.exp(z.sub_(self.lse[..., i0:i1, :]))                    # P_IJ: (..., bq, bk)
        grad_v[..., j0:j1, :] += p.transpose(-2, -1) @ do_i               # (..., bk, bq) @ (..., bq, Dv)
        grad_z = (do_i @ v_j.transpose(-2, -1)).sub_(self.rho[..., i0:i1, :]).mul_(p)  # dZ: (..., bq, bk)
        grad_q[..., i0:i1, :] += grad_z @ k_j                             # (..., bq, bk) @ (..., bk, D)
        grad_k[..., j0:j1, :] += grad_z.transpose(-2, -1) @ q_i           # q_i carries the scale


BACKWARD_ORDERS = ("kv_outer", "q_outer")


def check_flash_args(q, k, v, mask, causal, scale, block_q, block_k):
    check_attention_inputs(q, k, v, mask)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be True or False, got {type(causal).__name__}")
    scale = default_scale(q) if scale is None else check_scale(scale)
    block_q = _check_block("block_q", DEFAULT_BLOCK_Q if block_q is None else block_q)
    block_k = _check_block("block_k", DEFAULT_BLOCK_K if block_k is None else block_k)
    return scale, block_q, block_k


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                    *, causal: bool = False, scale: float | None = None, block_q: int | None = None,
                    block_k: int | None = None, backward_order: str = "kv_outer") -> torch.Tensor:
    """Tiled attention with FlashAttention-2's hand backward. Returns out (..., T, Dv).

    Same values and gradients as ``functional.attention(q, k, v, mask & causal_mask(T, S))[0]``;
    T and S need not divide the block sizes. bf16/fp16 inputs give an output of their dtype, computed
    with float32 accumulators; under autocast it runs in float32 (as ``ops`` does). ``backward_order``:
    ``"kv_outer"`` (FlashAttention-2's Algorithm 2) or ``"q_outer"`` (the forward's loop order).
    """
    scale, block_q, block_k = check_flash_args(q, k, v, mask, causal, scale, block_q, block_k)
    if backward_order not in BACKWARD_ORDERS:
        raise ValueError(f"backward_order must be one of {BACKWARD_ORDERS}, got {backward_order!r}")
    args = (mask, causal, scale, block_q, block_k, backward_order)
    if _autocast_on(q.device.type):
        q, k, v = q.float(), k.float(), v.float()
        with torch.autocast(q.device.type, enabled=False):
            return FlashAttentionFunction.apply(q, k, v, *args)
    return FlashAttentionFunction.apply(q, k, v, *args)


def tiled_attention_autograd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                             *, causal: bool = False, scale: float | None = None, block_q: int | None = None,
                             block_k: int | None = None) -> torch.Tensor:
    """The same tiled forward, differentiated by autograd: correct, but every tile's P is kept for
    the backward, so memory grows back to ~T·S (the lesson's counter-example)."""
    scale, block_q, block_k = check_flash_args(q, k, v, mask, causal, scale, block_q, block_k)
    return tiled_forward(q, k, v, mask, causal, scale, block_q, block_k)[0]


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, *,
         causal: bool = False) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with the lab's causal convention, for comparisons.

    SDPA's ``is_causal=True`` aligns the triangle to the *top left* (query i sees keys j ≤ i); the lab aligns
    it to the bottom right (j ≤ i + S − T, so the last query sees every key). They agree only when T = S.
    For T ≠ S this warns and passes the bottom-right mask explicitly (no fused causal kernel, same numbers
    as ``flash_attention``). A fully masked row comes back as SDPA gives it (NaN on some versions).
    """
    T, S = q.shape[-2], k.shape[-2]
    if causal and T != S:
        warnings.warn(f"SDPA's is_causal aligns the causal mask to the top left when T != S (here T={T}, S={S}); "
                      "the lab aligns it to the bottom right, so the explicit bottom-right mask is passed instead",
                      UserWarning, stacklevel=2)
        tri = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)    # (T, S): j ≤ i + S − T
        mask = tri if mask is None else mask & tri
        causal = False
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


# --- a trace of the tiles, for the lesson's widget -----------------------------------------------

def trace_tiles(q: torch.Tensor, k: torch.Tensor, *, causal: bool = False, scale: float | None = None,
                block_q: int = 4, block_k: int = 4) -> list[dict]:
    """Every step of the forward's loop for one head (q (T, D), k (S, D)), in order.

    Each step is a dict: ``rows`` (i0, i1), ``cols`` (j0, j1), the tile's (masked) ``scores``
    (bq, bk), and after folding that tile in, the running max ``m`` and sum ``l`` of those rows (bq,).
    Tiles that causal masking skips never appear.
    """
    check_floating(q=q, k=k)
    if q.dim() != 2 or k.dim() != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(f"trace_tiles takes one head: q (T, D) and k (S, D), got {tuple(q.shape)} "
                         f"and {tuple(k.shape)}")
    scale = default_scale(q) if scale is None else check_scale(scale)
    T, S = q.shape[0], k.shape[0]
    steps = []
    for i0 in range(0, T, _check_block("block_q", block_q)):
        i1 = min(i0 + block_q, T)
        m = q.new_full((i1 - i0,), float("-inf"))
        l = q.new_zeros(i1 - i0)
        for j0, j1, partly in key_blocks(i0, i1, T, S, _check_block("block_k", block_k), causal):
            z = (q[i0:i1] * scale) @ k[j0:j1].T                    # (bq, bk)
            allowed = _block_allowed(None, partly, i0, i1, j0, j1, T, S, q.device)
            if allowed is not None:
                z = z.masked_fill(~allowed, float("-inf"))
            m, l = online_softmax_update(m, l, z)
            steps.append({"rows": (i0, i1), "cols": (j0, j1), "m": m.clone(), "l": l.clone(),
                          "scores": z.clone()})
    return steps


__all__ = ["BACKWARD_ORDERS", "DEFAULT_BLOCK_K", "DEFAULT_BLOCK_Q", "FlashAttentionFunction", "accumulator_dtype",
           "flash_attention", "key_blocks", "query_blocks", "online_softmax", "online_softmax_update",
           "check_flash_args", "expand_mask", "sdpa", "tiled_attention_autograd",
           "tiled_forward", "trace_tiles"]
