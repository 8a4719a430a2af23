"""Lesson 09's package pieces: the post-LN block, attention dropout, the LR range test, recipe variants."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from attnflex_lab.modules import MultiHeadAttention, TransformerBlock
from attnflex_lab.recipes.variants import (
    Variant,
    mean_sd,
    regulariser_variants,
    run_variant,
    saved_curves,
    sizes_for,
    small_data_sizes,
    summary_table,
)
from attnflex_lab.training.lr_range import lr_range_test


def test_post_ln_block_is_norm_after_each_residual_sum():
    torch.manual_seed(0)
    block = TransformerBlock(16, 4, norm_first=False).eval()
    x = torch.randn(2, 5, 16)
    h = block.ln1(x + block.attn(x))
    expected = block.ln2(h + block.mlp(h))
    torch.testing.assert_close(block(x), expected)
    pre = TransformerBlock(16, 4).eval()
    pre.load_state_dict(block.state_dict())                 # same weights, pre-LN order
    h = x + pre.attn(pre.ln1(x))
    torch.testing.assert_close(pre(x), h + pre.mlp(pre.ln2(h)))
    assert not torch.allclose(pre(x), block(x))


@pytest.mark.parametrize("backend", ["sdpa", "functional"])
def test_attention_dropout_acts_in_training_only(backend):
    torch.manual_seed(0)
    plain = MultiHeadAttention(16, 4, backend=backend)
    dropped = MultiHeadAttention(16, 4, backend=backend, attn_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(3, 6, 16)
    torch.testing.assert_close(dropped.eval()(x), plain.eval()(x))     # eval: no dropout
    torch.manual_seed(1)
    train_out = dropped.train()(x)
    assert not torch.allclose(train_out, plain(x), atol=1e-4)          # train: some keys forgotten
    grad = torch.randn_like(train_out)                                 # random upstream gradient
    train_out.backward(grad)
    assert all(torch.isfinite(p.grad).all() for p in dropped.parameters())


def test_attention_dropout_is_refused_where_it_cannot_work():
    with pytest.raises(ValueError, match="attn_dropout must be in"):
        MultiHeadAttention(16, 4, attn_dropout=1.0)
    with pytest.raises(ValueError, match="'ops' backward"):
        MultiHeadAttention(16, 4, backend="ops", attn_dropout=0.1)


def _regression():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256, generator=gen)
    return TensorDataset(x, y)


def _mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x).squeeze(-1), y)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))


def test_lr_range_test_sweeps_geometrically_and_finds_where_the_loss_falls():
    result = lr_range_test(_mlp(), _regression(), _mse, lr_min=1e-3, lr_max=1.0, steps=100, batch_size=32,
                           grad_clip=None)
    assert len(result.losses) == len(result.lrs) == len(result.smoothed) == 100 and not result.diverged
    assert result.lrs[0] == pytest.approx(1e-3) and result.lrs[-1] == pytest.approx(1.0)
    ratios = [math.log(b / a) for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert max(ratios) - min(ratios) < 1e-9 and ratios[0] == pytest.approx(math.log(1e3) / 99)
    assert min(result.smoothed) < result.smoothed[0] / 5          # the fit got much better ...
    assert 1e-2 < result.steepest_lr < 1.0                        # ... fastest where Adam's lr is useful


def test_lr_range_test_stops_when_the_loss_explodes():
    result = lr_range_test(_mlp(), _regression(), _mse, lr_min=1e-3, lr_max=1e3, steps=100, batch_size=32,
                           grad_clip=None)
    assert result.diverged and len(result.lrs) < 100
    assert result.smoothed[-1] > 4 * min(result.smoothed)
    assert result.min_loss_lr < result.lrs[-1]


def test_lr_range_test_refuses_bad_ranges():
    with pytest.raises(ValueError, match="lr_min"):
        lr_range_test(nn.Linear(4, 1), _regression(), _mse, lr_min=1.0, lr_max=0.1)
    with pytest.raises(ValueError, match="steps"):
        lr_range_test(nn.Linear(4, 1), _regression(), _mse, steps=2)


def test_variants_validate_their_knobs():
    with pytest.raises(ValueError, match="schedule"):
        Variant("x", schedule="linear")
    with pytest.raises(ValueError, match="eps > 0"):
        Variant("x", adversarial="fgsm")
    with pytest.raises(ValueError, match="no transformer block"):
        run_variant("digits", Variant("x", attn_dropout=0.1), 0, sizes_for("digits", "smoke"))
    with pytest.raises(ValueError, match="task must be"):
        run_variant("lm", Variant("x"), 0)


def test_a_smoke_variant_trains_and_reports_its_curves(one_torch_thread):
    sizes = sizes_for("reverse", "smoke")
    runs = {"a": [run_variant("reverse", Variant("a", patience=1), s, sizes, steps=30) for s in (0, 1)]}
    run = runs["a"][0]
    assert {"test_token_accuracy", "attention_entropy", "attention_on_target", "steps_trained"} <= set(run.metrics)
    assert run.history.stopped_early == (run.metrics["steps_trained"] < 30)
    train, test = run.metrics["train_token_accuracy"], run.metrics["test_token_accuracy"]
    assert 0 <= train <= 1 and run.metrics["generalisation_gap"] == pytest.approx(train - test)
    curves = saved_curves(runs, "val_loss")
    assert len(curves["a"]) == 2 and curves["a"][0][0][0] == sizes.eval_every
    values = [r.metrics["test_token_accuracy"] for r in runs["a"]]
    assert mean_sd(runs["a"], "test_token_accuracy")[0] == pytest.approx(sum(values) / 2)
    assert "a" in summary_table(runs, ["test_token_accuracy"])


def test_regulariser_variants_add_exactly_one_knob_each_to_the_baseline():
    baseline, *others = regulariser_variants(300)
    assert baseline.name == "baseline" and baseline.warmup_steps == 30
    for variant in others:
        changed = {k for k, v in dataclasses.asdict(variant).items() if v != getattr(baseline, k)} - {"name"}
        assert len(changed) == 1, (variant.name, changed)
    cpu = small_data_sizes("cpu")
    assert cpu.n_train == 64 and small_data_sizes("gpu") == cpu       # gpu runs the measured setting
    assert small_data_sizes("smoke").steps < cpu.steps


def test_block_gradient_norms_and_the_first_update_ratio():
    from attnflex_lab.models.transformer import EncoderConfig, SequenceEncoder
    from attnflex_lab.recipes.variants import Sizes, block_gradient_norms, init_gradient_report

    torch.manual_seed(0)
    model = SequenceEncoder(EncoderConfig(vocab_size=10, n_classes=10, max_len=6, d_model=16, n_heads=4, n_layers=3))
    x = torch.randint(0, 10, (8, 6))
    upstream = torch.randn(8, 6, 10)                                   # a random upstream gradient
    loss = (model(x) * upstream).sum()
    norms = block_gradient_norms(model, loss)
    loss = (model(x) * upstream).sum()
    loss.backward()
    for block, norm in zip(model.blocks, norms, strict=True):
        manual = torch.sqrt(sum(p.grad.pow(2).sum() for p in block.parameters())).item()
        assert norm == pytest.approx(manual, rel=1e-5)
    sizes = Sizes(steps=1, batch_size=16, eval_every=1, length=6, d_model=16, n_layers=2)
    small, large = (init_gradient_report(False, 0, sizes, lr) for lr in (1e-4, 1e-2))
    assert len(small["grad_norm"]) == 2 and small["grad_norm"] == large["grad_norm"]
    for a, b in zip(small["update_ratio"], large["update_ratio"], strict=True):
        assert b == pytest.approx(100 * a, rel=0.05)                 # Adam's first step scales with lr


@pytest.mark.parametrize("profile, layers", [("cpu", 4), ("gpu", 6)])
def test_post_ln_gradients_at_init_spread_more_than_pre_ln(profile, layers):
    """Cell nb09-10b's claims at the sizes the cpu and gpu profiles use (section 2's encoder, seeds 0-2;
    one batch, no training): post-LN's largest/smallest block gradient norm is over 3x pre-LN's, and
    Adam's first step at lr 3e-2 moves every block by > 0.2 of its weight norm."""
    from attnflex_lab.recipes.variants import init_gradient_report, sizes_for

    sizes = dataclasses.replace(sizes_for("reverse", profile), n_layers=layers)
    for seed in (0, 1, 2):
        post, pre = (init_gradient_report(norm_first, seed, sizes, 3e-2) for norm_first in (False, True))
        spread = [max(r["grad_norm"]) / min(r["grad_norm"]) for r in (post, pre)]
        assert spread[0] > 3 * spread[1], (profile, seed, spread)
        assert min(post["update_ratio"] + pre["update_ratio"]) > 0.2, (profile, seed, post, pre)


class _ReverseOracle(nn.Module):
    """Outputs one-hot logits of its input reversed: a reverse model that reads only its source position."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))     # predict() asks the model for its device

    def forward(self, x):                               # (N, T) -> (N, T, 10)
        return F.one_hot(x.flip(1), 10).float()


def test_reverse_corruption_reads_each_output_against_its_own_source():
    from attnflex_lab.recipes.variants import reverse_corruption
    from attnflex_lab.tasks.algorithmic import make_task

    test = make_task("reverse", 400, 8, vocab_size=10, seed=3)
    clean = reverse_corruption(_ReverseOracle(), test, 0.0, seed=0)
    assert clean["all outputs"] == 1.0 and math.isnan(clean["corrupted outputs copy the new digit"])
    shares = reverse_corruption(_ReverseOracle(), test, 0.3, seed=0)
    assert shares["outputs whose source was kept"] == 1.0                 # nothing spreads ...
    assert shares["corrupted outputs copy the new digit"] == 1.0          # ... the new digit is copied
    assert 0.6 < shares["all outputs"] < 0.8                               # about 1 - rate of outputs stay right
    bad = type("Split", (), {"x": test.x, "y": test.y[:, :-1]})()
    with pytest.raises(ValueError, match=r"\(400, 8\) and \(400, 7\)"):
        reverse_corruption(_ReverseOracle(), bad, 0.3, seed=0)
