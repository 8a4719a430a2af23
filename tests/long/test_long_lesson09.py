"""Lesson 09 at the gpu profile's budget (make test-long; not in CI): the headline claims the notebook
asserts where models train (cpu and gpu), at the gpu profile's sizes (``sizes_for(task, "gpu")``
with the notebook's gpu overrides), seeds 0-2.

- warm-up (section 2; gpu: 6 layers, length 12, 600 steps, lr 3e-2): a pre-LN encoder with the
  warm-up learns reverse on every seed (token accuracy ≥ 0.95; measured 1.00 on seeds 0-2, ~50 s
  each on two shared cores). Measured, not asserted: pre-LN without a warm-up 1.00 (seeds 0 and
  2) but 0.24 (seed 1); post-LN *with* the warm-up 0.10 (seed 0), so the cpu claim that a warm-up rescues
  post-LN does not hold at this size. The notebook asserts the post-LN claims in cpu only and states
  these numbers. No test here asserts that a recipe must fail;
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
SCHEDULES = {"pre-LN warm": (True, SCHEDULE_STEPS // 5)}
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
def test_pre_ln_with_a_warm_up_learns_reverse_at_a_high_lr(schedule, seed):
    assert _schedule(schedule, seed) >= 0.95


def test_adversarial_training_buys_robust_accuracy_for_clean_accuracy():
    runs = {name: [_adversarial(name, s) for s in SEEDS] for name in ADVERSARIAL}
    clean = {name: np.mean([c for c, _ in r]) for name, r in runs.items()}
    robust = {name: np.mean([p for _, p in r]) for name, r in runs.items()}
    print("clean", clean, "PGD", robust)
    assert robust["PGD-trained"] > robust["standard"] + 0.1 and robust["FGSM-trained"] > robust["standard"] + 0.1
    assert clean["PGD-trained"] < clean["standard"]
