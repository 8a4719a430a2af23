"""Associative recall (lesson 07 §3.4): the task's answers are the stored values, the arms differ only in
their attention, and the sliding window sees exactly the last `window` pairs.

Planted bugs these catch: answers gathered with the wrong index (values.gather(1, keys)), keys drawn with
replacement (randint), a window one pair short (lo = S − window + 1), seeding after the model is built
(the arms start from different weights), and a held-out seed that a training batch also uses
(held_out_seed = seed).
"""

import dataclasses

import pytest
import torch

from attnflex_lab.kernels import efficient
from attnflex_lab.recipes import recall
from attnflex_lab.tasks.recall import RecallConfig, recall_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_answers_are_the_values_stored_with_the_asked_keys():
    task = RecallConfig(n_keys=20, n_values=7, n_pairs=12, n_queries=5)
    pairs, queries, answers = recall_pairs(task, 64, seed=3)
    assert pairs.shape == (64, 12, 2) and queries.shape == answers.shape == (64, 5)
    for row_pairs, row_queries, row_answers in zip(pairs.tolist(), queries.tolist(), answers.tolist(), strict=True):
        stored = dict(row_pairs)
        assert len(stored) == 12, "keys within an example must be distinct"
        assert len(set(row_queries)) == 5 and all(stored[q] == a for q, a in zip(row_queries, row_answers, strict=True))
    assert pairs[..., 0].max() < 20 and pairs[..., 1].max() < 7
    assert torch.equal(recall_pairs(task, 64, seed=3)[0], pairs)
    assert not torch.equal(recall_pairs(task, 64, seed=4)[0], pairs)


@pytest.mark.parametrize(("fields", "message"), [
    ({"n_pairs": 40}, "n_pairs=40 distinct keys cannot be drawn from n_keys=32"),
    ({"n_queries": 20}, "n_queries=20 distinct questions need n_pairs ≥ n_queries"),
    ({"n_values": 0}, "n_values must be a positive int, got 0"),
    ({"n_keys": 3.5}, "n_keys must be a positive int, got 3.5"),
])
def test_bad_task_sizes_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        RecallConfig(**{"n_keys": 32, "n_values": 8, "n_pairs": 16, "n_queries": 8, **fields})


def test_the_window_sees_exactly_the_last_pairs():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 2, 5, 8, generator=gen, dtype=torch.float64)        # M = 5 questions
    k, v = (torch.randn(2, 2, 12, 8, generator=gen, dtype=torch.float64) for _ in range(2))   # N = 12 pairs
    out = recall.window_attention(q, k, v, window=4)
    for m in range(5):   # each question, as the last query of a causal sequence, sees keys 8..11
        one = efficient.sliding_window_attention(q[..., m:m + 1, :], k, v, window=4)
        torch.testing.assert_close(out[..., m:m + 1, :], one)
    k2 = k.clone()
    k2[..., 7, :] += 5.0                                                    # just outside the window
    torch.testing.assert_close(recall.window_attention(q, k2, v, window=4), out)
    k2[..., 8, :] += 5.0                                                    # the oldest pair inside it
    assert not torch.allclose(recall.window_attention(q, k2, v, window=4), out)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_window_in_low_precision_is_as_close_to_fp64_as_sdpa(dtype):
    gen = torch.Generator().manual_seed(1)
    # rounded to dtype first, so the fp64 reference sees the same numbers and only the arithmetic differs
    q, k, v = (torch.randn(2, 2, n, 16, generator=gen, dtype=torch.float64).to(dtype) for n in (8, 40, 40))
    reference = recall.window_attention(q.double(), k.double(), v.double(), window=12)
    sdpa_error = (torch.nn.functional.scaled_dot_product_attention(q, k[..., -12:, :], v[..., -12:, :]).double()
                  - reference).abs().max()
    ours = recall.window_attention(q, k, v, window=12)
    assert ours.dtype == dtype and (ours.double() - reference).abs().max() <= 2 * sdpa_error + 1e-6


def test_bad_window_inputs_are_named():
    q, k = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    with pytest.raises(ValueError, match="window must be a positive int, got 0"):
        recall.window_attention(q, k, k, window=0)
    with pytest.raises(ValueError, match=r"k \(1, 5, 8\) and v \(1, 4, 7\)"):
        recall.window_attention(q, k, torch.randn(1, 4, 7), window=2)


def test_the_arms_start_from_the_same_weights_and_differ_only_in_attention():
    cfg = recall.study_config("smoke")
    models = {name: recall.build_reader(name, cfg, seed=1) for name in recall.VARIANTS}
    states = [m.state_dict() for m in models.values()]
    for state in states[1:]:
        assert all(torch.equal(state[key], states[0][key]) for key in state)
    pairs, queries, _ = recall_pairs(cfg.task, 4, seed=0)
    outs = {name: m(pairs, queries) for name, m in models.items()}
    assert outs["full"].shape == (4, cfg.task.n_queries, cfg.task.n_values)
    assert not torch.allclose(outs["full"], outs["linear"]) and not torch.allclose(outs["full"], outs["sliding window"])
    other_seed = recall.build_reader("full", cfg, seed=2).state_dict()
    assert not torch.equal(other_seed["key_emb.weight"], states[0]["key_emb.weight"])


def test_a_window_wider_than_the_context_is_full_attention():
    cfg = dataclasses.replace(recall.study_config("smoke"), steps=3, eval_every=3, batch_size=16, eval_size=64)
    wide = dataclasses.replace(cfg, window=cfg.task.n_pairs)
    assert recall.train_recall("sliding window", wide, seed=0) == recall.train_recall("full", cfg, seed=0)


def test_held_out_examples_are_not_training_batches():
    cfg = recall.study_config("gpu")
    training = {recall.batch_seed(seed, step) for seed in range(3) for step in range(cfg.steps)}
    assert not {recall.held_out_seed(seed) for seed in range(3)} & training
    assert len(training) == 3 * cfg.steps                      # no two runs or steps share a batch either


def test_bad_variant_and_late_growth():
    with pytest.raises(ValueError, match="variant must be one of .*'sparse'"):
        recall.attention_for("sparse", 4)
    assert recall.late_growth([(0, 0.1), (80, 0.5), (100, 0.55)]) == pytest.approx(0.05)
