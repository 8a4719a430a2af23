"""Lesson 10 exercises: the prefix identity's check refuses plausible slips, with a message."""

import pytest
import torch

from attnflex_lab.exercises import ExerciseError, check, get


def _parts(q, k, v, prefix_k, prefix_v, scale):
    scores_p, scores_k = scale * q @ prefix_k.T, scale * q @ k.transpose(-2, -1)
    return scores_p, scores_k, scores_p.softmax(-1) @ prefix_v, scores_k.softmax(-1) @ v


def _gate_by_counting_positions(q, k, v, prefix_k, prefix_v, scale):
    _, _, prefix_out, base_out = _parts(q, k, v, prefix_k, prefix_v, scale)
    P, S = prefix_k.shape[0], k.shape[-2]
    return torch.full(q.shape[:-1], P / (P + S), dtype=q.dtype), prefix_out, base_out   # λ ignores q


def _gate_by_exponentiating(q, k, v, prefix_k, prefix_v, scale):
    scores_p, scores_k, prefix_out, base_out = _parts(q, k, v, prefix_k, prefix_v, scale)
    z_p, z_k = scores_p.exp().sum(-1), scores_k.exp().sum(-1)                # overflows on large scores
    return z_p / (z_p + z_k), prefix_out, base_out


def _gate_the_wrong_way_round(q, k, v, prefix_k, prefix_v, scale):
    scores_p, scores_k, prefix_out, base_out = _parts(q, k, v, prefix_k, prefix_v, scale)
    return torch.sigmoid(scores_k.logsumexp(-1) - scores_p.logsumexp(-1)), prefix_out, base_out  # 1 − λ


@pytest.mark.parametrize("wrong,expected_words", [
    (_gate_by_counting_positions, ["output[0]", "entries differ", "sigmoid"]),
    (_gate_by_exponentiating, ["output[0] contains NaN", "overflows"]),
    (_gate_the_wrong_way_round, ["output[0]", "entries differ", "Z_P / (Z_P + Z_K)"]),
])
def test_plausible_wrong_prefix_gates_are_explained(wrong, expected_words):
    with pytest.raises(ExerciseError) as info:
        check("10.prefix_decomposition", wrong)
    message = str(info.value)
    assert message.startswith("10.prefix_decomposition: not yet right")
    for word in expected_words:
        assert word in message, f"{word!r} missing from: {message}"


def test_the_model_answer_mixes_back_to_attention_over_the_concatenation():
    q, k, v, prefix_k, prefix_v, scale = get("10.prefix_decomposition").make_inputs(torch.Generator().manual_seed(1))
    gate, prefix_out, base_out = get("10.prefix_decomposition").solution(q, k, v, prefix_k, prefix_v, scale)
    keys = torch.cat([prefix_k.expand(len(k), -1, -1), k], dim=1)
    values = torch.cat([prefix_v.expand(len(v), -1, -1), v], dim=1)
    full = (scale * q @ keys.transpose(-2, -1)).softmax(-1) @ values
    torch.testing.assert_close(gate[..., None] * prefix_out + (1 - gate[..., None]) * base_out, full)
