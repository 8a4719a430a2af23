"""Lesson 07's checks catch the usual slips: a missing rescale, and re-normalising a tile's weights."""

import pytest
import torch

from attnflex_lab.exercises import ExerciseError, check


def test_online_update_without_rescale_is_caught():
    def no_rescale(m, l, x_block):
        m_new = torch.maximum(m, x_block.amax(dim=-1))
        return m_new, l + torch.exp(x_block - m_new.unsqueeze(-1)).sum(dim=-1)

    with pytest.raises(ExerciseError, match="rescale"):
        check("07.online_softmax_update", no_rescale)


def test_block_dv_softmaxed_within_the_tile_is_caught():
    def tile_softmax(q_i, k_j, lse_i, grad_out_i, scale):
        p = (scale * q_i @ k_j.transpose(-2, -1)).softmax(dim=-1)  # normalised over this tile only
        return p.transpose(-2, -1) @ grad_out_i

    with pytest.raises(ExerciseError, match="lse_i covers every key"):
        check("07.block_dv", tile_softmax)


def test_block_dv_without_transpose_names_the_shape():
    def no_transpose(q_i, k_j, lse_i, grad_out_i, scale):
        p = torch.exp(scale * q_i @ k_j.transpose(-2, -1) - lse_i.unsqueeze(-1))
        return p @ grad_out_i.new_zeros(grad_out_i.shape[0], p.shape[-1], grad_out_i.shape[-1])

    with pytest.raises(ExerciseError, match=r"shape \(2, 5, 3\), expected \(2, 6, 3\)"):
        check("07.block_dv", no_transpose)


def test_online_update_that_gives_nan_on_a_masked_block_is_caught():
    # the textbook update without the −∞ guard: right for every row with a finite score so far
    def unguarded(m, l, x_block):
        m_new = torch.maximum(m, x_block.amax(dim=-1))
        return m_new, l * torch.exp(m - m_new) + torch.exp(x_block - m_new.unsqueeze(-1)).sum(dim=-1)

    with pytest.raises(ExerciseError, match="NaN"):
        check("07.online_softmax_update", unguarded)


def test_online_update_model_answer_is_finite_on_a_fully_masked_block():
    from attnflex_lab.exercises import get

    solution = get("07.online_softmax_update").solution
    m = torch.tensor([float("-inf"), 1.0], dtype=torch.float64)
    l = torch.tensor([0.0, 2.0], dtype=torch.float64)
    m_new, l_new = solution(m, l, torch.full((2, 3), float("-inf"), dtype=torch.float64))
    assert torch.equal(m_new, m) and torch.equal(l_new, l)


# --- 07.tile_backward: the whole tile with ρ --------------------------------------------------------

def _tile_with(rho_of, dk_scale=True):
    """A tile backward whose ρ comes from ``rho_of(p, grad_p, grad_out_i, out_i)`` (planted bugs swap it)."""
    def tile(q_i, k_j, v_j, lse_i, out_i, grad_out_i, scale):
        p = torch.exp(scale * q_i @ k_j.transpose(-2, -1) - lse_i.unsqueeze(-1))
        grad_p = grad_out_i @ v_j.transpose(-2, -1)
        grad_z = p * (grad_p - rho_of(p, grad_p, grad_out_i, out_i))
        grad_k = grad_z.transpose(-2, -1) @ q_i
        return scale * grad_z @ k_j, scale * grad_k if dk_scale else grad_k, p.transpose(-2, -1) @ grad_out_i
    return tile


def test_tile_backward_written_out_passes():
    right = _tile_with(lambda p, grad_p, grad_out_i, out_i: (grad_out_i * out_i).sum(-1, keepdim=True))
    assert check("07.tile_backward", right).status == "correct"


def test_tile_backward_with_the_tiles_own_rowsum_is_caught():
    # lesson 02's rowsum(dP ⊙ P), taken over this tile's keys only: right for dV, wrong for dQ and dK
    tile_rho = _tile_with(lambda p, grad_p, grad_out_i, out_i: (grad_p * p).sum(-1, keepdim=True))
    with pytest.raises(ExerciseError, match=r"dV_J is right.*ρ_I = rowsum\(dO_I ⊙ O_I\)"):
        check("07.tile_backward", tile_rho)


def test_tile_backward_without_the_scale_in_dk_names_dk():
    no_scale = _tile_with(lambda p, grad_p, grad_out_i, out_i: (grad_out_i * out_i).sum(-1, keepdim=True),
                          dk_scale=False)
    with pytest.raises(ExerciseError, match=r"dK_J: \d+ of \d+ entries differ") as caught:
        check("07.tile_backward", no_scale)
    assert "dQ_I:" not in str(caught.value) and "dV_J:" not in str(caught.value)


def test_tile_backward_by_autograd_is_refused():
    def by_autograd(q_i, k_j, v_j, lse_i, out_i, grad_out_i, scale):
        leaves = [t.clone().requires_grad_() for t in (q_i, k_j, v_j)]
        p = torch.exp(scale * leaves[0] @ leaves[1].transpose(-2, -1) - lse_i.unsqueeze(-1))
        return torch.autograd.grad(p @ leaves[2], leaves, grad_out_i)   # ignores ρ too: refused before that

    with pytest.raises(ExerciseError, match="autograd is off"):
        check("07.tile_backward", by_autograd)


def test_tile_backward_stub_is_not_attempted():
    def stub(*args):
        raise NotImplementedError

    assert check("07.tile_backward", stub).status == "not attempted"
