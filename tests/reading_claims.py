"""Lesson 12's measurements on one trained digits ViT, shared by the cpu learning test and the long
tier (gpu budget): faithfulness under three fills (IG's baseline matching the fill), Adebayo's
randomised-weights check, uniform attention in every layer vs the last only, the adversarial
attention search, and head pruning in three orders."""

import torch
import torch.nn.functional as F

from attnflex_lab.analysis import controls, explain, interp
from attnflex_lab.recipes.vit import vit_eval

FILLS = ("zero", "mean", "blur")


def measure(model, data, seed: int, n_images: int = 100, ig_steps: int = 32) -> dict:
    model = model.cpu().eval()
    images = data.test.tensors[0][:n_images]
    patch = model.cfg.patch_size
    train_images = data.train.tensors[0]
    out: dict = {"accuracy": vit_eval(model, data.test)["accuracy"], "faithfulness": {}}
    for kind in FILLS:
        fill = controls.fill_images(images, kind, reference=train_images)
        baseline = fill.expand_as(images).contiguous()
        scores = explain.vit_explanations(model, images, ig_steps=ig_steps, baseline=baseline)
        if kind != "zero":     # IG from the blank image, measured with a fill it was not built for
            scores["IG, zero baseline"] = explain.patch_scores(
                explain.integrated_gradients(model, images, steps=ig_steps), patch)
        out["faithfulness"][kind] = explain.faithfulness_table(model, images, scores, patch, seed=seed, fill=fill)
        if kind == "zero":
            trained_scores = scores
    noise = controls.randomized_copy(model, seed=seed)
    random_scores = explain.vit_explanations(noise, images, ig_steps=ig_steps)
    out["randomised spearman"] = {name: explain.rank_agreement(trained_scores[name], random_scores[name]).mean().item()
                                  for name in trained_scores}
    with interp.uniform_attention(model):
        out["uniform all layers"] = vit_eval(model, data.test)["accuracy"]
    with interp.uniform_attention(model, layers=[-1]):
        out["uniform last layer"] = vit_eval(model, data.test)["accuracy"]
    adv = controls.adversarial_attention(model, images[:64], steps=60, max_output_change=0.01, seed=seed)
    out["adversarial jsd"] = adv["jsd"].mean().item()
    out["adversarial found"] = (adv["jsd"] > 0.3).float().mean().item()

    x_val, y_val = data.val.tensors

    def val_loss(m):
        return F.cross_entropy(m(x_val), y_val).item()

    def test_acc(m):
        return vit_eval(m, data.test)["accuracy"]

    importance = interp.head_importance(model, val_loss)
    total = importance.numel()
    third = total - total // 3
    out["pruning one-shot"] = dict(interp.pruning_curve(model, importance, test_acc))[third]
    out["pruning greedy"] = dict(interp.greedy_pruning_curve(model, val_loss, test_acc))[third]
    gen = torch.Generator().manual_seed(seed)
    orders = [torch.rand(importance.shape, generator=gen) for _ in range(5)]
    out["pruning random"] = [dict(interp.pruning_curve(model, order, test_acc))[third] for order in orders]
    return out
