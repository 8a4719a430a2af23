"""FlashAttention-2's forward as a Triton kernel: the loop of ``flash.tiled_forward``, one program per
query block, every tile in fast memory (Tillet et al. 2019; the fused-attention tutorial's layout).

Triton is optional (``pip install attnflex-lab[triton]``; Linux wheels only). On a GPU the kernel is
compiled; on a CPU it runs in Triton's *interpreter*, which executes the same kernel body with NumPy,
one program at a time, so the lab tests it without a GPU. Triton decides which when a kernel is
*imported* (``TRITON_INTERPRET=1`` before ``import triton``: its own library functions such as ``tl.max``
are built then, for one mode), so one process holds one mode; import this module through
``attnflex_lab.kernels.load_triton_flash(interpret=...)``, which sets the variable or says why it cannot.

Shapes as ``flash.flash_attention``: q (..., T, D), k (..., S, D), v (..., S, Dv), a bool mask
broadcastable to (..., T, S) (True = may attend), ``causal`` aligned to the bottom right; a fully masked
row gives zeros and lse = +∞. Accumulators m, ℓ and O are float32 whatever the input dtype.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from triton.runtime.jit import JITFunction

from .._validate import check_attention_inputs
from .flash import FlashAttentionFunction, check_flash_args, expand_mask

MIN_BLOCK = 16   # tl.dot wants every dim ≥ 16 on a GPU; tl.arange wants powers of two


@triton.jit
def online_update(m_i, l_i, z):
    """Fold a tile of scores z (BLOCK_M, BLOCK_N) into the running max m_i and sum l_i (BLOCK_M,).

    Returns (m_new, l_new, alpha, p): alpha = e^(m − m_new) rescales what was accumulated, p = e^(z − m_new)
    are this tile's unnormalised weights. A row that is −∞ so far measures from 0, so it stays 0 (no NaN).
    """
    m_new = tl.maximum(m_i, tl.max(z, 1))
    ref = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp(m_i - ref)
    p = tl.exp(z - ref[:, None])
    l_new = l_i * alpha + tl.sum(p, 1)
    return m_new, l_new, alpha, p


@triton.jit
def _flash_forward_kernel(Q, K, V, MASK, O, LSE, T, S, scale,
                          stride_qb, stride_qt, stride_kb, stride_ks, stride_vb, stride_vs,
                          stride_mb, stride_mt, stride_ob, stride_ot,
                          D: tl.constexpr, DV: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                          HAS_MASK: tl.constexpr, DOT_FP32: tl.constexpr):
    block, bh = tl.program_id(0), tl.program_id(1)            # one query block of one (batch, head)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)             # (BLOCK_M,)
    d, dv = tl.arange(0, BLOCK_D), tl.arange(0, BLOCK_DV)
    q = tl.load(Q + bh * stride_qb + rows[:, None] * stride_qt + d[None, :],
                mask=(rows[:, None] < T) & (d[None, :] < D), other=0.0)              # Q_I: (BLOCK_M, BLOCK_D)
    if DOT_FP32:
        q = q.to(tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    if CAUSAL:                                                  # keys ≥ hi are masked for every row here
        hi = tl.minimum(S, (block + 1) * BLOCK_M + S - T)
    else:
        hi = S
    for start in range(0, hi, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)                   # (BLOCK_N,)
        k = tl.load(K + bh * stride_kb + cols[:, None] * stride_ks + d[None, :],
                    mask=(cols[:, None] < S) & (d[None, :] < D), other=0.0)          # K_J: (BLOCK_N, BLOCK_D)
        if DOT_FP32:
            k = k.to(tl.float32)
        z = tl.dot(q, tl.trans(k)) * scale                    # Z_IJ: (BLOCK_M, BLOCK_N), fp32 accumulation
        allowed = (cols[None, :] < S) & (rows[:, None] < T)
        if CAUSAL:
            allowed = allowed & (cols[None, :] <= rows[:, None] + S - T)
        if HAS_MASK:
            tile = tl.load(MASK + bh * stride_mb + rows[:, None] * stride_mt + cols[None, :],
                           mask=(rows[:, None] < T) & (cols[None, :] < S), other=0)
            allowed = allowed & (tile != 0)
        z = tl.where(allowed, z, float("-inf"))
        m_i, l_i, alpha, p = online_update(m_i, l_i, z)
        v = tl.load(V + bh * stride_vb + cols[:, None] * stride_vs + dv[None, :],
                    mask=(cols[:, None] < S) & (dv[None, :] < DV), other=0.0)        # V_J: (BLOCK_N, BLOCK_DV)
        if DOT_FP32:
            v = v.to(tl.float32)
        else:
            p = p.to(V.dtype.element_ty)                      # P in the input dtype for the MMA, as FA-2
        acc = acc * alpha[:, None] + tl.dot(p, v)
    has_keys = l_i > 0                                          # False for a fully masked row
    out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    lse = tl.where(has_keys, tl.where(m_i == float("-inf"), 0.0, m_i) + tl.log(tl.where(has_keys, l_i, 1.0)),
                   float("inf"))
    tl.store(O + bh * stride_ob + rows[:, None] * stride_ot + dv[None, :], out.to(O.dtype.element_ty),
             mask=(rows[:, None] < T) & (dv[None, :] < DV))
    tl.store(LSE + bh * T + rows, lse, mask=rows < T)


INTERPRETED = not isinstance(_flash_forward_kernel, JITFunction)   # built for Triton's interpreter (CPU)


def _pow2_block(name: str, value: int) -> int:
    if value < MIN_BLOCK or value & (value - 1):
        raise ValueError(f"{name} must be a power of two ≥ {MIN_BLOCK} for the Triton kernel, got {value}")
    return value


def triton_flash_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, *,
                         causal: bool = False, scale: float | None = None, block_q: int = 64, block_k: int = 64
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(out (..., T, Dv) in q's dtype, lse (..., T) in float32)``, as ``flash.tiled_forward``."""
    scale, block_q, block_k = check_flash_args(q, k, v, mask, causal, scale, block_q, block_k)
    _pow2_block("block_q", block_q), _pow2_block("block_k", block_k)
    if q.device.type != "cuda" and not INTERPRETED:
        raise RuntimeError(f"the compiled Triton kernel needs CUDA tensors, got {q.device}; on a CPU load the "
                           "interpreted one: attnflex_lab.kernels.load_triton_flash(interpret=True)")
    lead, (T, D), (S, Dv) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    q3, k3, v3 = (t.reshape(-1, *t.shape[-2:]).contiguous() for t in (q, k, v))   # (B·H, T|S, D|Dv)
    BH = q3.shape[0]
    # the interpreter's float32 -> bf16/fp16 cast truncates (a GPU rounds to nearest): there the kernel writes
    # float32 and torch rounds once at the end
    out = torch.empty(BH, T, Dv, dtype=torch.float32 if INTERPRETED else q.dtype, device=q.device)
    lse = torch.empty(BH, T, dtype=torch.float32, device=q.device)
    if mask is not None:   # (B·H, T, S) int8: 1 = may attend
        mask3 = expand_mask(mask, T, S).expand(*lead, T, S).reshape(BH, T, S).to(torch.int8).contiguous()
    else:
        mask3 = q3.new_empty(1, 1, 1, dtype=torch.int8)     # never read (HAS_MASK = False)
    grid = (triton.cdiv(T, block_q), BH)
    _flash_forward_kernel[grid](
        q3, k3, v3, mask3, out, lse, T, S, scale,
        q3.stride(0), q3.stride(1), k3.stride(0), k3.stride(1), v3.stride(0), v3.stride(1),
        mask3.stride(0), mask3.stride(1), out.stride(0), out.stride(1),
        D=D, DV=Dv, BLOCK_D=max(MIN_BLOCK, triton.next_power_of_2(D)),
        BLOCK_DV=max(MIN_BLOCK, triton.next_power_of_2(Dv)), BLOCK_M=block_q, BLOCK_N=block_k,
        CAUSAL=causal, HAS_MASK=mask is not None,
        # the interpreter's tl.dot misreads bf16/fp16 (NumPy has no bf16), so there the tiles are upcast first:
        # exact for the products (a bf16·bf16 product fits float32), as a GPU's fp32 accumulation; P is then
        # not rounded to bf16 before P·V either (the GPU path does round it, as FA-2 does)
        DOT_FP32=INTERPRETED or q.dtype == torch.float32)
    return out.to(q.dtype).reshape(*lead, T, Dv), lse.reshape(*lead, T)


class TritonFlashFunction(FlashAttentionFunction):
    """The Triton forward, and ``flash``'s hand backward (Algorithm 2's order) in PyTorch on its O and lse."""

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, block_q, block_k, order="kv_outer"):
        out, lse = triton_flash_forward(q, k, v, mask, causal=causal, scale=scale, block_q=block_q, block_k=block_k)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.mask, ctx.causal, ctx.scale, ctx.blocks, ctx.order = mask, causal, scale, (block_q, block_k), order
        return out


def triton_flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, *,
                           causal: bool = False, scale: float | None = None, block_q: int = 64,
                           block_k: int = 64) -> torch.Tensor:
    """out (..., T, Dv): the Triton forward, differentiable through ``flash``'s hand backward."""
    check_attention_inputs(q, k, v, mask)
    scale, block_q, block_k = check_flash_args(q, k, v, mask, causal, scale, block_q, block_k)
    return TritonFlashFunction.apply(q, k, v, mask, causal, scale, block_q, block_k, "kv_outer")


# --- the exercise's probe: one tile through an online-softmax update ------------------------------

@triton.jit
def _update_probe_kernel(M, L, Z, M_OUT, L_OUT, ALPHA, P, n_cols, UPDATE: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows, cols = tl.arange(0, BLOCK_M), tl.arange(0, BLOCK_N)
    z = tl.load(Z + rows[:, None] * n_cols + cols[None, :], mask=cols[None, :] < n_cols, other=float("-inf"))
    m_new, l_new, alpha, p = UPDATE(tl.load(M + rows), tl.load(L + rows), z)
    tl.store(M_OUT + rows, m_new)
    tl.store(L_OUT + rows, l_new)
    tl.store(ALPHA + rows, alpha)
    tl.store(P + rows[:, None] * n_cols + cols[None, :], p, mask=cols[None, :] < n_cols)


def run_update(update) -> callable:
    """A Python function (m (R,), l (R,), z (R, N)) -> (m_new, l_new, alpha, p) that runs ``update`` (a
    ``@triton.jit`` function) on one tile inside a kernel, for ``exercises.check``. In interpreter mode on
    CPU tensors; compiled, on the GPU (the results come back to the inputs' device)."""
    if not callable(getattr(update, "fn", None)):
        raise TypeError(f"decorate your update with @triton.jit, got a plain {type(update).__name__}")

    def run(m, l, z):
        device = torch.device("cpu") if INTERPRETED else torch.device("cuda")
        R, N = z.shape
        m32, l32, z32 = (t.to(device, torch.float32).contiguous() for t in (m, l, z))
        outs = [torch.empty_like(m32), torch.empty_like(l32), torch.empty_like(m32), torch.empty_like(z32)]
        try:
            with _model_answer_switched_off():
                _update_probe_kernel[(1,)](m32, l32, z32, *outs, N, UPDATE=update, BLOCK_M=R,
                                           BLOCK_N=max(MIN_BLOCK, triton.next_power_of_2(N)))
        except Exception as err:                                # the interpreter wraps the learner's error
            if isinstance(err.__cause__, NotImplementedError) or "NotImplementedError" in str(err):
                raise NotImplementedError from err
            raise
        return tuple(t.to(z.device) for t in outs)

    return run


# the exercise guard's words (exercises.guard.MARKER; kernels import nothing from exercises): check() reads them
_REFUSED = "attnflex-lab exercise guard: the package's own implementation is switched off in this check"


def _refuse(*args, **kwargs):
    raise RuntimeError(_REFUSED)


@contextlib.contextmanager
def _model_answer_switched_off():
    """In the interpreter, the package's ``online_update`` raises while the probe runs a learner's update, so
    passing it (or a jit function that calls it) is refused. The interpreter runs each jit function from a
    rewritten copy cached per function, so that cache entry is swapped. Compiled (on a GPU) nothing is swapped:
    the check there is for learners who ran it in the interpreter first."""
    if not INTERPRETED:
        yield
        return
    cache, key = type(online_update).rewritten_fn, online_update.fn
    missing = object()
    saved = cache.get(key, missing)
    cache[key] = _refuse
    try:
        yield
    finally:
        if saved is missing:
            cache.pop(key, None)
        else:
            cache[key] = saved


__all__ = ["INTERPRETED", "TritonFlashFunction", "online_update", "run_update", "triton_flash_attention",
           "triton_flash_forward"]
