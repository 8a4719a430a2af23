"""Lesson 07 exercises: the online-softmax update, one tile of FlashAttention's backward (dV, then the
whole tile with ρ), and the Triton kernel's update.

Inputs are float64, and blocks differ in size from each other, so a missing rescale or transpose
shows up as a wrong number or a wrong shape. Each check switches off the package's own implementation
(``flash``'s update and backward) and, for the gradients, autograd
(``guard.py``); the Triton probe refuses the package's kernel helper itself (``triton_flash.run_update``).
"""

import torch

from . import Exercise, describe_difference, register

_F64 = torch.float64
_BACKWARD = ("attnflex_lab.kernels.flash:FlashAttentionFunction.backward",
             "attnflex_lab.kernels.flash:_BackwardState.tile",
             "attnflex_lab.ops:AttentionFunction.backward")


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
    hints=("the new max is max(m, the block's max); the old sum l was measured from the old max m.",
           "e^(x − m) = e^(x − m_new) · e^(m_new − m): rescale the old sum by e^(m − m_new) before adding the "
           "block's Σ e^(x_block − m_new).",
           "a row that is −∞ so far and in this block has m_new = −∞, and −∞ − (−∞) is NaN: measure from 0 "
           "there (torch.where(torch.isfinite(m_new), m_new, 0)) so its sum stays 0."),
    guards=("attnflex_lab.kernels.flash:online_softmax_update",),
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
    hints=("O_I = Σ_J P_IJ V_J: the share of dV_J that comes from query block I is P_IJᵀ dO_I.",
           "P_IJ is rebuilt from the saved lse_i, which covers every key: exp(scale · q_i k_jᵀ − lse_i), "
           "with no new max or sum.",
           "p.transpose(-2, -1) @ grad_out_i, shape (..., bk, Dv)."),
    guards=_BACKWARD,
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))


def tile_backward(q_i: torch.Tensor, k_j: torch.Tensor, v_j: torch.Tensor, lse_i: torch.Tensor,
                  out_i: torch.Tensor, grad_out_i: torch.Tensor, scale: float):
    """Tile (I, J)'s shares of (dQ_I, dK_J, dV_J), recomputing P_IJ from lse and ρ from O:

    P_IJ = exp(s·Q_I K_Jᵀ − lse_I), dV_J = P_IJᵀ dO_I, dP_IJ = dO_I V_Jᵀ, ρ_I = rowsum(dO_I ⊙ O_I),
    dZ_IJ = P_IJ ⊙ (dP_IJ − ρ_I), dQ_I = s · dZ_IJ K_J, dK_J = s · dZ_IJᵀ Q_I.
    """
    p = torch.exp(scale * q_i @ k_j.transpose(-2, -1) - lse_i.unsqueeze(-1))  # P_IJ: (..., bq, bk)
    grad_v = p.transpose(-2, -1) @ grad_out_i                                # (..., bk, bq) @ (..., bq, Dv)
    grad_p = grad_out_i @ v_j.transpose(-2, -1)                              # dP_IJ: (..., bq, bk)
    rho = (grad_out_i * out_i).sum(dim=-1, keepdim=True)                     # the whole row's: (..., bq, 1)
    grad_z = p * (grad_p - rho)                                              # dZ_IJ: (..., bq, bk)
    return scale * grad_z @ k_j, scale * grad_z.transpose(-2, -1) @ q_i, grad_v


def _tile_inputs(gen: torch.Generator):
    q_i = torch.randn(2, 5, 4, generator=gen, dtype=_F64)            # (B, bq, D): one query block
    k = torch.randn(2, 10, 4, generator=gen, dtype=_F64)             # (B, S, D): every key
    v = torch.randn(2, 10, 3, generator=gen, dtype=_F64)             # (B, S, Dv)
    scale = 0.7
    z = scale * q_i @ k.transpose(-2, -1)                            # (B, bq, S)
    lse_i = torch.logsumexp(z, dim=-1)                               # over all S keys
    out_i = z.softmax(dim=-1) @ v                                    # O_I over all S keys: (B, bq, Dv)
    grad_out_i = torch.randn(2, 5, 3, generator=gen, dtype=_F64)     # dO_I
    return q_i, k[:, 3:9], v[:, 3:9], lse_i, out_i, grad_out_i, scale   # the key block J = keys 3..8


def _compare_tile(got, expected):
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"return a tuple (dQ_I, dK_J, dV_J), got {type(got).__name__}"
    problems = {name: describe_difference(g, e, 1e-10, 1e-8, name=name)
                for name, g, e in zip(("dQ_I", "dK_J", "dV_J"), got, expected, strict=True)}
    wrong = [problem for problem in problems.values() if problem]
    if not wrong:
        return None
    if problems["dV_J"] is None and problems["dQ_I"] and problems["dK_J"]:
        wrong.append("dV_J is right, so P_IJ is; dQ_I and dK_J are not: check dZ_IJ = P_IJ ⊙ (dP_IJ − ρ_I) with "
                     "ρ_I = rowsum(dO_I ⊙ O_I), the whole row's term (this tile's rowsum(dP ⊙ P) sees only keys J)")
    return "\n".join(wrong)


register(Exercise(
    id="07.tile_backward",
    prompt="Write tile_backward(q_i, k_j, v_j, lse_i, out_i, grad_out_i, scale) -> (dQ_I, dK_J, dV_J): the "
           "contributions of one tile (query block I, key block J) to the three gradients, recomputing "
           "P_IJ from lse_i and using ρ from out_i (both cover every key, not only block J).",
    solution=tile_backward,
    make_inputs=_tile_inputs,
    compare=_compare_tile,
    hint="P_IJ from lse_i as in 8.2; dP = dO_I V_Jᵀ; dZ = P ⊙ (dP − ρ) with ρ = rowsum(dO_I ⊙ O_I) (keepdim); "
         "dQ_I = scale · dZ K_J, dK_J = scale · dZᵀ Q_I.",
    hints=("the softmax backward of lesson 02, dZ = P ⊙ (dP − rowsum(dP ⊙ P)), needs the whole row of P; "
           "the tile has only its columns J.",
           "rowsum(dP ⊙ P)_i = Σ_j (dO_i · v_j) P_ij = dO_i · O_i: so "
           "ρ_I = (grad_out_i * out_i).sum(-1, keepdim=True), from tensors of the whole row.",
           "P from lse_i; dV_J = Pᵀ dO_I; dP = dO_I V_Jᵀ; dZ = P ⊙ (dP − ρ_I); Z = scale · Q Kᵀ, so "
           "dQ_I = scale · dZ K_J and dK_J = scale · dZᵀ Q_I."),
    guards=_BACKWARD,
    no_autograd=True,
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
    hints=("the same update as exercise 8.1, on a whole tile at once: tl.max(z, 1) is each row's max.",
           "alpha = e^(m_i − m_new) rescales both the running sum and (in the kernel) the output accumulator; "
           "p = e^(z − m_new[:, None]).",
           "a row that is −∞ everywhere so far has m_new = −∞: measure from ref = tl.where(m_new == "
           "float('-inf'), 0.0, m_new) in alpha and p."),
    # the Triton probe (triton_flash.run_update) itself refuses the package's kernel helper, online_update
    guards=("attnflex_lab.kernels.flash:online_softmax_update",),
    atol=1e-5, rtol=1e-5, trials=2,
))
