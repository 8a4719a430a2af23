"""Lesson 09 at the gpu profile's budget (make test-long; not in CI): the headline claims the notebook
asserts where models train (cpu and gpu), at the gpu profile's sizes (``sizes_for(task, "gpu")``
with the notebook's gpu overrides), seeds 0-2.

- warm-up (section 2; gpu: 6 layers, length 12, 600 steps, lr 3e-2): a pre-LN encoder learns reverse
  with and without a warm-up (token accuracy ≥ 0.95). The cpu claim that a warm-up rescues post-LN
  does NOT hold at this size: measured seed 0, post-LN with a warm-up 0.10 (chance), pre-LN 1.00
  with and 1.00 without (about 50 s each on two shared cores); the notebook asserts the post-LN
  claims in cpu only and states the gpu numbers. No test here asserts that post-LN must fail;
- adversarial training (section 6; gpu: 1,500 steps, ε = 0.1): FGSM- and PGD-trained digits models
  gain more than 0.1 PGD accuracy over the standard one (means over seeds), and the PGD-trained
  model pays some clean accuracy.

Time: not measured end to end (the adversarial part, 9 digits runs of 1,500 steps with PGD training
the costliest, has not been run; estimated 20-30 min on two busy cores).
"""

import functools

import numpy as np
import pytest

from attnflex_lab.recipes.variants import Variant, robust_accuracy, run_variant, sizes_for
from tests.learning import SEEDS

pytestmark = [pytest.mark.long, pytest.mark.usefixtures("one_torch_thread")]

HIGH_LR, LAYERS, SCHEDULE_STEPS, DIGIT_STEPS, EPS = 3e-2, 6, 600, 1500, 0.1   # the notebook's gpu values
SCHEDULES = {"pre-LN warm": (True, SCHEDULE_STEPS // 5), "pre-LN cold": (True, 0)}
ADVERSARIAL = {"standard": Variant("standard"), "FGSM-trained": Variant("FGSM-trained", adversarial="fgsm", eps=EPS),
               "PGD-trained": Variant("PGD-trained", adversarial="pgd", eps=EPS)}


@functools.cache
def _schedule(name: str, seed: int) -> float:
    norm_first, warmup = SCHEDULES[name]
    variant = Variant(name, lr=HIGH_LR, warmup_steps=warmup, norm_first=norm_first)
    run = run_variant("reverse", variant, seed, sizes_for("reverse", "gpu"), steps=SCHEDULE_STEPS, n_layers=LAYERS)
    print(name, seed, run.metrics["test_token_accuracy"])
    return run.metrics["test_token_accuracy"]


@functools.cache
def _adversarial(name: str, seed: int) -> tuple[float, float]:
    run = run_variant("digits", ADVERSARIAL[name], seed, sizes_for("digits", "gpu"), steps=DIGIT_STEPS)
    images, labels = run.extras["data"].test.tensors
    clean, robust = run.metrics["test_accuracy"], robust_accuracy(run.model, images, labels, "pgd", EPS, seed=seed)
    print(name, seed, "clean", clean, "PGD", robust)
    return clean, robust


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_pre_ln_learns_reverse_at_a_high_lr_with_and_without_warm_up(schedule, seed):
    assert _schedule(schedule, seed) >= 0.95


def test_adversarial_training_buys_robust_accuracy_for_clean_accuracy():
    runs = {name: [_adversarial(name, s) for s in SEEDS] for name in ADVERSARIAL}
    clean = {name: np.mean([c for c, _ in r]) for name, r in runs.items()}
    robust = {name: np.mean([p for _, p in r]) for name, r in runs.items()}
    print("clean", clean, "PGD", robust)
    assert robust["PGD-trained"] > robust["standard"] + 0.1 and robust["FGSM-trained"] > robust["standard"] + 0.1
    assert clean["PGD-trained"] < clean["standard"]
