"""explain.py: gradient × input against finite differences, integrated gradients' completeness, the
attention scores against the rollout and the maps, and the deletion / insertion curves on models
whose answer is known."""

import pytest
import torch
from torch import nn

from attnflex_lab.analysis import explain
from attnflex_lab.models.vit import TinyViT, ViTConfig
from attnflex_lab.viz.rollout import attention_rollout

F64 = torch.float64


def _tiny_vit(seed=0, n_layers=1, backend="functional", scale=0.3):
    """A random ViT with weights large enough that it is far from linear, in float64, eval mode."""
    torch.manual_seed(seed)
    model = TinyViT(ViTConfig(d_model=8, n_heads=2, n_layers=n_layers, dropout=0.0, backend=backend))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, scale)
    return model.double().eval()


def _images(batch, seed):
    return torch.rand(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_gradient_x_input_matches_a_finite_difference():
    model = _tiny_vit()
    x = _images(2, seed=1)
    target = torch.tensor([3, 7])
    got = explain.gradient_x_input(model, x, target)                     # (2, 1, 8, 8)
    eps, expected = 1e-6, torch.zeros_like(x)
    with torch.no_grad():
        for index in range(x[0].numel()):
            step = torch.zeros_like(x).flatten(1)
            step[:, index] = eps
            step = step.view_as(x)
            up = model(x + step).gather(1, target[:, None]).squeeze(1)
            down = model(x - step).gather(1, target[:, None]).squeeze(1)
            expected.flatten(1)[:, index] = x.flatten(1)[:, index] * (up - down) / (2 * eps)
    torch.testing.assert_close(got, expected, atol=1e-7, rtol=1e-5)


def test_gradient_x_input_explains_the_prediction_by_default():
    model, x = _tiny_vit(), _images(3, seed=2)
    predicted = model(x).argmax(-1)
    torch.testing.assert_close(explain.gradient_x_input(model, x),
                               explain.gradient_x_input(model, x, predicted))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integrated_gradients_completeness_tightens_with_steps(seed):
    model, x = _tiny_vit(seed), _images(4, seed=10 + seed)
    baseline = _images(4, seed=20 + seed) * 0.3
    target = torch.randint(0, 10, (4,), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        gap = (model(x) - model(baseline)).gather(1, target[:, None]).squeeze(1)    # (B,)
    errors = []
    for steps in (4, 16, 64):
        ig = explain.integrated_gradients(model, x, target, baseline=baseline, steps=steps)
        errors.append((ig.flatten(1).sum(1) - gap).abs().max().item())
    assert errors[2] < 1e-3 * gap.abs().max().item() + 1e-9, (errors, gap)
    assert errors[1] < errors[0] and errors[2] < errors[1] / 4, errors  # midpoint rule: ~1/steps²


def test_integrated_gradients_in_chunks_is_the_one_pass_sum():
    """Chunks bound memory (lesson 12's gpu profile: 400 images × 64 steps); 7 splits the path unevenly."""
    model, x, target = _tiny_vit(3), _images(5, seed=4), torch.tensor([0, 3, 5, 7, 9])   # five classes
    whole = explain.integrated_gradients(model, x, target, steps=6, chunk=10_000)
    torch.testing.assert_close(explain.integrated_gradients(model, x, target, steps=6, chunk=7), whole)
    with pytest.raises(ValueError, match="chunk"):
        explain.integrated_gradients(model, x, target, steps=6, chunk=0)


def test_integrated_gradients_of_a_linear_model_is_gradient_x_input():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).double()
    x = _images(3, seed=5)
    torch.testing.assert_close(explain.integrated_gradients(linear, x, steps=3),
                               explain.gradient_x_input(linear, x))


def test_bad_inputs_are_named():
    model, x = _tiny_vit(), _images(2, seed=0)
    with pytest.raises(TypeError, match="torch.long"):
        explain.gradient_x_input(model, x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"target must have shape \(B=2,\)"):
        explain.gradient_x_input(model, x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="baseline must match x"):
        explain.integrated_gradients(model, x, baseline=torch.zeros(2, 1, 8, 8))   # float32
    with pytest.raises(ValueError, match="steps must be a positive int"):
        explain.integrated_gradients(model, x, steps=0)
    with pytest.raises(ValueError, match="does not fit|do not fit"):
        explain.perturbation_curve(model, x, torch.rand(2, 9, dtype=F64), 2)
    with pytest.raises(ValueError, match="mode must be"):
        explain.perturbation_curve(model, x, torch.rand(2, 16, dtype=F64), 2, mode="both")
    with pytest.raises(ValueError, match="model.eval"):
        explain.vit_explanations(model.train(), x)


def test_patch_scores_sum_each_patch_in_row_major_order():
    attributions = torch.zeros(2, 1, 8, 8)
    attributions[0, 0, 2, 7] = 1.5    # row 1 of the 4×4 grid, column 3: patch 7
    attributions[1, 0, 7, 0] = -2.0   # row 3, column 0: patch 12
    scores = explain.patch_scores(attributions, 2)
    expected = torch.zeros(2, 16)
    expected[0, 7], expected[1, 12] = 1.5, -2.0
    torch.testing.assert_close(scores, expected)
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(explain.patch_scores(x, 2).sum(1), x.flatten(1).sum(1))


def test_mask_patches_fills_only_the_removed_patches():
    images = torch.rand(2, 1, 8, 8) + 1.0
    removed = torch.zeros(2, 16, dtype=torch.bool)
    removed[0, 5] = True                                # row 1, column 1: pixels [2:4, 2:4]
    out = explain.mask_patches(images, removed, 2, fill=0.0)
    assert (out[0, 0, 2:4, 2:4] == 0).all() and (out == 0).sum() == 4
    torch.testing.assert_close(out[1], images[1])
    with pytest.raises(ValueError, match="bool"):
        explain.mask_patches(images, removed.float(), 2)


class _OnePatchModel(nn.Module):
    """Logits that depend only on the ink in patch ``watch``: class 1 wins while it is there."""

    def __init__(self, watch):
        super().__init__()
        self.watch = watch

    def forward(self, x):
        row, col = divmod(self.watch, 4)
        ink = x[:, 0, 2 * row:2 * row + 2, 2 * col:2 * col + 2].sum((1, 2))    # (B,)
        return torch.stack([torch.zeros_like(ink), 4.0 * ink - 2.0], dim=1)  # (B, 2)


def test_deletion_and_insertion_curves_follow_the_ranking():
    model = _OnePatchModel(watch=9)
    images = torch.ones(1, 1, 8, 8)
    target = torch.tensor([1])
    good = torch.zeros(1, 16)
    good[0, 9] = 1.0                                   # ranks the one patch that matters first
    bad = -good                                        # ranks it last
    full, blank = torch.sigmoid(torch.tensor(14.0)), torch.sigmoid(torch.tensor(-2.0))
    deletion = explain.perturbation_curve(model, images, good, 2, target=target)
    torch.testing.assert_close(deletion[0, 0], full)
    torch.testing.assert_close(deletion[0, 1:], blank.expand(16))
    late = explain.perturbation_curve(model, images, bad, 2, target=target)
    torch.testing.assert_close(late[0, :16], full.expand(16))
    insertion = explain.perturbation_curve(model, images, good, 2, target=target, mode="insertion")
    torch.testing.assert_close(insertion[0, 0], blank)
    torch.testing.assert_close(insertion[0, 1:], full.expand(16))
    assert explain.curve_auc(deletion) < explain.curve_auc(late)


def test_curve_auc_is_a_trapezoid_area_over_fractions():
    torch.testing.assert_close(explain.curve_auc(torch.ones(2, 5)), torch.ones(2))
    torch.testing.assert_close(explain.curve_auc(torch.linspace(1, 0, 17)[None]), torch.tensor([0.5]))
    torch.testing.assert_close(explain.curve_auc(torch.tensor([[1.0, 0.0, 0.0]])), torch.tensor([0.25]))
    with pytest.raises(ValueError, match="P ≥ 1"):
        explain.curve_auc(torch.ones(3, 1))


def test_rank_agreement():
    a = torch.randn(4, 16)
    torch.testing.assert_close(explain.rank_agreement(a, 3 * a + 1), torch.ones(4, dtype=F64))
    torch.testing.assert_close(explain.rank_agreement(a, -a), -torch.ones(4, dtype=F64))


def test_attention_scores_read_the_cls_row():
    model, x = _tiny_vit(n_layers=2, backend="sdpa"), _images(3, seed=4)
    maps = explain.vit_attention_maps(model, x)                         # (L, B, H, N, N)
    assert maps.shape == (2, 3, 2, 17, 17)
    torch.testing.assert_close(explain.raw_attention_scores(maps), maps[1, :, :, 0, 1:].mean(1))
    rollout = explain.rollout_scores(maps)
    for b in range(3):
        expected = torch.as_tensor(attention_rollout(maps[:, b].numpy())[0, 1:])
        torch.testing.assert_close(rollout[b], expected)
    one_layer = maps[:1]          # one layer: rollout = ½·(head mean) + ½·I, so off the diagonal = raw / 2
    torch.testing.assert_close(explain.rollout_scores(one_layer), explain.raw_attention_scores(one_layer) / 2)
    with pytest.raises(ValueError, match=r"\(L, B, H, N, N\)"):
        explain.raw_attention_scores(maps[0])


def test_vit_explanations_and_faithfulness_table():
    model, x = _tiny_vit(n_layers=2), _images(4, seed=6)
    scores = explain.vit_explanations(model, x, ig_steps=4)
    assert set(scores) == {"attention", "rollout", "grad×input", "integrated gradients"}
    assert all(s.shape == (4, 16) for s in scores.values())
    table = explain.faithfulness_table(model, x, scores, 2, seed=0)
    assert set(table) == set(scores) | {"random"}
    assert all(0.0 <= v <= 1.0 for row in table.values() for v in row.values())


def test_mask_patches_names_the_shape_it_wants():
    with pytest.raises(ValueError, match=r"\(B, ch, H, W\).*patch_size=4.*\(2, 10, 10\)"):
        explain.mask_patches(torch.zeros(2, 10, 10), torch.zeros(2, 4, dtype=torch.bool), 4)


def test_rollout_scores_and_random_scores_stay_on_the_inputs_device():
    maps = torch.rand(2, 3, 2, 17, 17).softmax(-1).to("meta")          # (L, B, H, N, N), no data
    assert explain.rollout_scores(maps).device.type == "meta"
    gen = torch.Generator().manual_seed(0)
    assert explain.random_scores(3, 16, gen, device="meta").device.type == "meta"
    cpu = explain.random_scores(3, 16, torch.Generator().manual_seed(0))
    torch.testing.assert_close(cpu, torch.rand(3, 16, generator=torch.Generator().manual_seed(0)))


@pytest.mark.cuda
def test_explanations_of_a_model_on_cuda_come_back_on_cuda():
    model, x = _tiny_vit(n_layers=2, backend="sdpa"), _images(3, seed=4)
    model, x = model.cuda(), x.cuda()
    maps = explain.vit_attention_maps(model, x)
    assert explain.rollout_scores(maps).device == x.device
    scores = explain.vit_explanations(model, x, ig_steps=2)
    assert all(s.device == x.device for s in scores.values())
    table = explain.faithfulness_table(model, x, scores, 2, seed=0)
    assert set(table) == set(scores) | {"random"}


def test_importing_explain_does_not_import_plotting():
    import subprocess
    import sys

    code = ("import sys, attnflex_lab.analysis.explain; "
            "print(sorted(m for m in sys.modules if m.startswith('attnflex_lab.viz') or m == 'matplotlib.pyplot'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_random_floor_averages_distinct_orders_from_the_seed():
    """"random" is the mean over ``random_orders`` different orders drawn from ``seed``; one order
    reused five times would be a noisier floor and would give a different number here."""
    model, images, target = _OnePatchModel(watch=9), torch.ones(6, 1, 8, 8), torch.ones(6, dtype=torch.long)
    table = explain.faithfulness_table(model, images, {"none": torch.zeros(6, 16)}, 2, seed=3,
                                       random_orders=5, target=target)
    gen = torch.Generator().manual_seed(3)
    draws = [explain.curve_auc(explain.perturbation_curve(model, images, explain.random_scores(6, 16, gen), 2,
                                                          target=target)).mean().item() for _ in range(5)]
    assert len(set(round(d, 6) for d in draws)) == 5                      # the orders really differ
    assert table["random"]["deletion"] == pytest.approx(sum(draws) / 5)


def test_a_fill_image_replaces_removed_patches_and_follows_each_curve_step():
    images = torch.rand(2, 1, 8, 8) + 1.0
    removed = torch.zeros(2, 16, dtype=torch.bool)
    removed[1, 0] = True                                 # image 1, pixels [0:2, 0:2]
    fill = -torch.rand(2, 1, 8, 8)
    out = explain.mask_patches(images, removed, 2, fill=fill)
    torch.testing.assert_close(out[1, 0, :2, :2], fill[1, 0, :2, :2])
    torch.testing.assert_close(out[0], images[0])
    assert (out[1, 0, 2:] == images[1, 0, 2:]).all()
    with pytest.raises(ValueError, match=r"fill must be a number or images"):
        explain.mask_patches(images, removed, 2, fill=torch.zeros(3, 1, 8, 8))
    # a per-image fill is used for every step of that image's curve: insertion starts from it
    model = _OnePatchModel(watch=0)
    ones, target = torch.ones(3, 1, 8, 8), torch.ones(3, dtype=torch.long)
    per_image = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8), torch.zeros(1, 8, 8)])  # image 1's has ink
    curve = explain.perturbation_curve(model, ones, torch.zeros(3, 16), 2, target=target,
                                       mode="insertion", fill=per_image)
    torch.testing.assert_close(curve[:, 0], torch.sigmoid(torch.tensor([-2.0, 14.0, -2.0])))
