"""Recipe "vit": a small Vision Transformer on the 8×8 digits (2×2 patches, a [CLS] token).

The lesson lays the [CLS] token's attention rollout over the digit (``viz.rollout``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import accuracy
from ..models.vit import TinyViT, ViTConfig
from ..profiles import by_profile
from ..tasks.digits import make_digits
from ..training import TrainConfig
from ..training.batches import iterate_batches
from .registry import Recipe, RecipeRun, register


def vit_loss(model, batch) -> torch.Tensor:
    images, labels = batch                          # (B, 1, 8, 8), (B,)
    return F.cross_entropy(model(images), labels)   # logits (B, 10)


@torch.no_grad()
def vit_eval(model, data, batch_size: int = 512) -> dict:
    device = next(model.parameters()).device
    preds = torch.cat([model(images.to(device)).argmax(-1).cpu()
                       for images, _ in iterate_batches(data, batch_size)])   # (N,)
    return {"accuracy": accuracy(preds, data.tensors[1])}


def train_config(profile: str, seed: int) -> TrainConfig:
    return TrainConfig(
        steps=by_profile(smoke=30, cpu=700, gpu=4000, profile_name=profile),
        batch_size=64,
        lr=2e-3,
        weight_decay=0.05,
        warmup_steps=by_profile(smoke=5, cpu=70, gpu=300, profile_name=profile),
        eval_every=by_profile(smoke=15, cpu=350, gpu=500, profile_name=profile),
        seed=seed,
    )


def build(profile: str, seed: int) -> RecipeRun:
    data = make_digits(seed, limit=by_profile(smoke=400, cpu=None, gpu=None, profile_name=profile))
    torch.manual_seed(seed)
    model = TinyViT(ViTConfig(d_model=by_profile(smoke=32, cpu=64, gpu=128, profile_name=profile),
                              n_layers=by_profile(smoke=2, cpu=3, gpu=4, profile_name=profile)))

    def final_metrics(trained) -> dict:
        trained.eval()
        return {"test_accuracy": vit_eval(trained, data.test)["accuracy"],
                "val_accuracy": vit_eval(trained, data.val)["accuracy"]}

    return RecipeRun(model=model, train_data=data.train, val_data=data.val,
                     cfg=train_config(profile, seed), loss_fn=vit_loss, eval_fn=vit_eval,
                     final_metrics=final_metrics, extras={"data": data})


register(Recipe("vit", "a small Vision Transformer on 8x8 digits (2x2 patches)", build))
