"""Lesson 07 exercises: the online-softmax update and one tile of FlashAttention's backward (dV).

Inputs are float64, and blocks differ in size from each other, so a missing rescale or transpose
shows up as a wrong number or a wrong shape.
"""

import torch

from . import Exercise, register

_F64 = torch.float64


def online_softmax_update(m: torch.Tensor, l: torch.Tensor, x_block: torch.Tensor):
    """Fold a block of scores x_block (..., b) into the running max m (...) and sum l (...).

    Where everything seen so far is −∞ (a masked row), m_new = −∞ and e^(−∞ − (−∞)) would be NaN:
    measure from 0 instead, so those rows keep l = 0."""
    m_new = torch.maximum(m, x_block.amax(dim=-1))                      # (...)
    ref = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
    l_new = l * torch.exp(m - ref) + torch.exp(x_block - ref.unsqueeze(-1)).sum(dim=-1)
    return m_new, l_new


def _update_inputs(gen: torch.Generator):
    seen = 3 * torch.randn(4, 5, generator=gen, dtype=_F64)         # scores already folded in
    x_block = 3 * torch.randn(4, 3, generator=gen, dtype=_F64)      # the next block
    x_block[::2] += 5.0                                             # rows 0, 2: the max moves up
    seen[1] = float("-inf")                                         # row 1: masked so far, scores arrive now
    seen[3] = x_block[3] = float("-inf")                            # row 3: masked so far and in this block
    m = seen.amax(dim=-1)                                           # rows 1, 3: −∞
    l = torch.exp(seen - m.nan_to_num(neginf=0.0).unsqueeze(-1)).sum(dim=-1)   # rows 1, 3: 0
    return m, l, x_block


register(Exercise(
    id="07.online_softmax_update",
    prompt="Write online_softmax_update(m, l, x_block) -> (m_new, l_new): fold a block of scores "
           "(..., b) into the running max m and the running sum l = Σ e^(x − m) of each row.",
    solution=online_softmax_update,
    make_inputs=_update_inputs,
    hint="the new max is max(m, max of the block). The old sum was taken relative to the old max, "
         "so rescale it: l · e^(m − m_new), then add Σ e^(x_block − m_new) (keepdim or unsqueeze "
         "so each row subtracts its own max). A row that is −∞ everywhere so far (masked) has "
         "m_new = −∞, and −∞ − (−∞) is NaN: subtract 0 instead of m_new there (torch.where on "
         "torch.isfinite(m_new)), so its sum stays 0.",
    atol=1e-10, rtol=1e-8,
))


def block_dv(q_i: torch.Tensor, k_j: torch.Tensor, lse_i: torch.Tensor, grad_out_i: torch.Tensor,
             scale: float) -> torch.Tensor:
    """dV_J's share from query block I: P_IJᵀ dO_I, with P_IJ = exp(scale · Q_I K_Jᵀ − L_I)."""
    p = torch.exp(scale * q_i @ k_j.transpose(-2, -1) - lse_i.unsqueeze(-1))  # (..., bq, bk)
    return p.transpose(-2, -1) @ grad_out_i                                  # (..., bk, Dv)


def _dv_inputs(gen: torch.Generator):
    q_i = torch.randn(2, 5, 4, generator=gen, dtype=_F64)           # (B, bq, D): one query block
    k = torch.randn(2, 10, 4, generator=gen, dtype=_F64)            # (B, S, D): every key
    scale = 0.5
    lse_i = torch.logsumexp(scale * q_i @ k.transpose(-2, -1), dim=-1)  # (B, bq), over all S keys
    grad_out_i = torch.randn(2, 5, 3, generator=gen, dtype=_F64)    # (B, bq, Dv)
    return q_i, k[:, 3:9], lse_i, grad_out_i, scale                 # the key block J = keys 3..8


register(Exercise(
    id="07.block_dv",
    prompt="Write block_dv(q_i, k_j, lse_i, grad_out_i, scale): the contribution of query block I to "
           "dV for key block J, recomputing P_IJ from the saved row log-sum-exp lse_i.",
    solution=block_dv,
    make_inputs=_dv_inputs,
    hint="P_IJ = exp(scale · q_i k_jᵀ − lse_i) is already normalised (lse_i covers every key, not "
         "only this block, so do not softmax it again); then dV_J += P_IJᵀ dO_I, shape (..., bk, Dv).",
    atol=1e-10, rtol=1e-8,
))


def triton_online_update(m: torch.Tensor, l: torch.Tensor, z: torch.Tensor):
    """What the Triton kernel's ``online_update(m_i, l_i, z)`` returns for one tile, written in torch.

    The model answer in Triton is ``attnflex_lab.kernels.triton_flash.online_update``: the same lines with
    tl.maximum, tl.max(z, 1), tl.where, tl.exp and tl.sum(p, 1).
    """
    m_new = torch.maximum(m, z.amax(dim=-1))                            # (R,)
    ref = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
    alpha = torch.exp(m - ref)                                          # rescales what was accumulated
    p = torch.exp(z - ref.unsqueeze(-1))                                # (R, N), this tile's weights
    return m_new, l * alpha + p.sum(dim=-1), alpha, p


def _triton_update_inputs(gen: torch.Generator):
    seen = 3 * torch.randn(16, 9, generator=gen)                        # R = 16 rows (a power of two)
    z = 3 * torch.randn(16, 20, generator=gen)                          # a tile of N = 20 scores
    z[::3] += 5.0                                                       # some rows: the max moves up
    seen[1] = float("-inf")                                             # masked so far, scores arrive now
    seen[2] = z[2] = float("-inf")                                      # masked so far and in this tile
    m = seen.amax(dim=-1)
    l = torch.exp(seen - m.nan_to_num(neginf=0.0).unsqueeze(-1)).sum(dim=-1)
    return m, l, z


register(Exercise(
    id="07.triton_online_update",
    prompt="Write the Triton kernel's @triton.jit online_update(m_i, l_i, z) -> (m_new, l_new, alpha, p) "
           "for a (BLOCK_M, BLOCK_N) tile z, and check it as check(id, triton_flash.run_update(online_update)).",
    solution=triton_online_update,
    make_inputs=_triton_update_inputs,
    hint="m_new = tl.maximum(m_i, tl.max(z, 1)); measure from ref = tl.where(m_new == float('-inf'), 0.0, "
         "m_new) so a fully masked row gives 0, not NaN; alpha = tl.exp(m_i - ref); p = tl.exp(z - ref[:, None]) "
         "(each row minus its own max); the old sum was taken relative to the old max, so rescale it: "
         "l_new = l_i * alpha + tl.sum(p, 1).",
    atol=1e-5, rtol=1e-5, trials=2,
))
