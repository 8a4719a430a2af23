"""Recipe "digits": the attention-pooling classifier on scikit-learn's 8×8 digits.

"digits_mean" is the same network with mean pooling, the baseline to compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..metrics import accuracy
from ..models.classifier import AttentionPoolingClassifier, ClassifierConfig, MeanPoolingClassifier
from ..profiles import by_profile
from ..tasks.canvas import digit_regions, erase_regions, erasure_choices, make_canvas_digits
from ..tasks.digits import make_digits
from ..training import TrainConfig
from ..training.batches import iterate_batches
from .registry import Recipe, RecipeRun, register


def digits_loss(model, batch) -> torch.Tensor:
    images, labels = batch                             # (B, 1, 8, 8), (B,)
    logits, _ = model(images)                          # (B, 10)
    return F.cross_entropy(logits, labels)


def predict(model, data, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes (N,) and attention weights (N, T) for a dataset of (image, label) pairs."""
    device = next(model.parameters()).device
    preds, alphas = [], []
    with torch.no_grad():
        for images, _ in iterate_batches(data, batch_size):  # (b, 1, 8, 8), (b,)
            logits, alpha = model(images.to(device))           # (b, 10), (b, T)
            preds.append(logits.argmax(-1).cpu())
            alphas.append(alpha.cpu())
    return torch.cat(preds), torch.cat(alphas)


def digits_eval(model, data) -> dict:
    preds, _ = predict(model, data)
    return {"accuracy": accuracy(preds, data.tensors[1])}


def train_config(profile: str, seed: int) -> TrainConfig:
    return TrainConfig(
        steps=by_profile(smoke=40, cpu=1500, gpu=3000, profile_name=profile),
        batch_size=64,
        lr=3e-3,
        weight_decay=1e-4,
        warmup_steps=by_profile(smoke=5, cpu=100, gpu=200, profile_name=profile),
        eval_every=by_profile(smoke=20, cpu=250, gpu=500, profile_name=profile),
        seed=seed,
    )


def _build(model_cls, model_cfg: ClassifierConfig | None = None):
    def build(profile: str, seed: int) -> RecipeRun:
        data = make_digits(seed, limit=by_profile(smoke=400, cpu=None, gpu=None,
                                                  profile_name=profile))
        torch.manual_seed(seed)                        # the initial weights depend on the seed only
        model = model_cls(model_cfg or ClassifierConfig())

        def final_metrics(trained) -> dict:
            trained.eval()
            return {"test_accuracy": digits_eval(trained, data.test)["accuracy"],
                    "val_accuracy": digits_eval(trained, data.val)["accuracy"]}

        return RecipeRun(model=model, train_data=data.train, val_data=data.val,
                         cfg=train_config(profile, seed), loss_fn=digits_loss,
                         eval_fn=digits_eval, final_metrics=final_metrics, extras={"data": data})
    return build


register(Recipe("digits", "attention-pooling CNN on 8x8 handwritten digits",
                _build(AttentionPoolingClassifier)))
register(Recipe("digits_mean", "the same CNN with mean pooling (the baseline)",
                _build(MeanPoolingClassifier)))

# Lesson 03's p_t ablation: the "digits" run with p_t = 0 (not a recipe: nothing serves it).
build_without_positions = _build(AttentionPoolingClassifier, ClassifierConfig(learned_positions=False))


# --- cluttered canvases: where attention pooling should win (lesson 03, section 8) ---------------

CANVAS = 16                          # canvas side; the 2×2 pool leaves (16 / 2)² = 64 regions
CANVAS_DISTRACTORS = 4               # 4×4 pieces of other digits pasted around


def canvas_loss(model, batch) -> torch.Tensor:
    images, labels, _ = batch                          # (B, 1, 16, 16), (B,), (B, 2): the corners unused
    return digits_loss(model, (images, labels))


def canvas_eval(model, data) -> dict:
    images, labels, _ = data.tensors                   # the corners are for the attention-on-digit check
    return digits_eval(model, TensorDataset(images, labels))


def canvas_train_config(profile: str, seed: int) -> TrainConfig:
    return TrainConfig(
        steps=by_profile(smoke=20, cpu=500, gpu=3000, profile_name=profile),
        batch_size=64,
        lr=3e-3,
        weight_decay=1e-4,
        warmup_steps=by_profile(smoke=5, cpu=40, gpu=200, profile_name=profile),
        eval_every=by_profile(smoke=10, cpu=100, gpu=250, profile_name=profile),  # learning curves
        seed=seed,
    )


def canvas_config() -> ClassifierConfig:
    return ClassifierConfig(channels=16, d_model=32, positions=(CANVAS // 2) ** 2)


def _build_canvas(model_cls):
    def build(profile: str, seed: int) -> RecipeRun:
        data = make_canvas_digits(seed, size=CANVAS, distractors=CANVAS_DISTRACTORS,
                                  limit=by_profile(smoke=400, cpu=None, gpu=None, profile_name=profile))
        torch.manual_seed(seed)
        model = model_cls(canvas_config())

        def final_metrics(trained) -> dict:
            trained.eval()
            return {"test_accuracy": canvas_eval(trained, data.test)["accuracy"]}

        return RecipeRun(model=model, train_data=data.train, val_data=data.val,
                         cfg=canvas_train_config(profile, seed), loss_fn=canvas_loss,
                         eval_fn=canvas_eval, final_metrics=final_metrics, extras={"data": data})
    return build


register(Recipe("digits_canvas", "attention pooling on digits among clutter on a 16x16 canvas",
                _build_canvas(AttentionPoolingClassifier)))
register(Recipe("digits_canvas_mean", "mean pooling on the cluttered canvases (the baseline)",
                _build_canvas(MeanPoolingClassifier)))


def erasure_effects(model, data: TensorDataset) -> dict[str, dict[str, float]]:
    """Lesson 03's erasures over a canvas test set: for each (``tasks.canvas.erasure_choices``), the
    accuracy on the erased canvases and the attention's mean mass on the digit's regions."""
    images, labels, corners = data.tensors                             # (N, 1, s, s), (N,), (N, 2)
    on_digit = digit_regions(corners, images.shape[-1])                # (N, T)
    _, alpha = predict(model, TensorDataset(images, labels))           # (N, T) on the intact canvases
    effects = {}
    for name, erase in erasure_choices(alpha, on_digit).items():
        preds, erased_alpha = predict(model, TensorDataset(erase_regions(images, erase), labels))
        effects[name] = {"accuracy": accuracy(preds, labels),
                         "mass_on_digit": (erased_alpha * on_digit).sum(-1).mean().item()}
    return effects
