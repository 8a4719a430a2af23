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
