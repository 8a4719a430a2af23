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
  gain more than 0.1 PGD accuracy over the standard one (means over seeds), and at this budget the
  PGD-trained model pays no clean accuracy (within 0.02; the cpu profile's cost does not survive).

- regularisers on a small training set (section 4; cpu sizes, which the gpu profile also runs:
  ``small_data_sizes``): sort from 64 training sequences over-fits on every seed (train token
  accuracy 1.0, test ≤ 0.85, the validation loss at its lowest ≥ 4 evaluations before the end, so
  early stopping with patience 4 fires), the validation accuracy has plateaued (it moves < 0.03 over
  the last 100 steps), and dropout and attention dropout each raise the test token accuracy over the
  baseline on every seed (paired: each seed is its own data split), by > 0.01 on average. Measured,
  not asserted: label smoothing +0.01-0.02 per seed, weight decay 0.1 and early stopping within
  ±0.01 of the baseline. 9 runs of 300 steps: 102 s wall measured on two busy shared cores.

- token corruption (section 6) on the warmed-up pre-LN encoders above: at rates 0.1, 0.3 and 0.5 the
  outputs whose source was kept stay right and every corrupted output copies the new digit (measured
  1.00 and 1.00 at every rate on seeds 0-2; all outputs 0.90 / 0.70 / 0.50);
- PGD vs noise (section 6): the standard model keeps 0.605 under PGD at ε = 0.1 against 0.915 under
  noise of σ = 0.2 (means over seeds 0-2);
- the ensemble (section 7; five members, seeds 0-4, data split 0): members 0.981-0.992, ensemble
  0.992, its mean confidence 0.986 below its accuracy.
Measured, not asserted: the LR range test (section 3) at the gpu size (6 layers, width 64, length 12,
400 steps from 1e-4 to 10) blew up for neither block type on seeds 0-2 (steepest fall at 1.2-1.6e-3,
lowest smoothed loss at the end), so the notebook asserts its range-test claims in cpu only.

Time (make test-long, 2026-12-06, two cores): 10.3 min for the file as it was then (adversarial 371 s,
warm-up 3 x 70 s, regularisers 31 s); the corruption and noise checks reuse those runs, and the
ensemble's five runs took 206 s on a shared core (about 110 CPU-s).
"""

import functools

import numpy as np
import pytest
import torch

from attnflex_lab.analysis.robustness import gaussian_noise
from attnflex_lab.metrics import accuracy
from attnflex_lab.recipes.variants import (
    Variant,
    digits_probs,
    regulariser_variants,
    reverse_corruption,
    robust_accuracy,
    run_variant,
    sizes_for,
    small_data_sizes,
)
from tests.learning import SEEDS, late_change

pytestmark = [pytest.mark.long, pytest.mark.usefixtures("one_torch_thread")]

HIGH_LR, LAYERS, SCHEDULE_STEPS, DIGIT_STEPS, EPS = 3e-2, 6, 600, 1500, 0.1   # the notebook's gpu values
SCHEDULES = {"pre-LN warm": (True, SCHEDULE_STEPS // 5)}
CORRUPTION_RATES, ENSEMBLE_SIZE = (0.1, 0.3, 0.5), 5   # cells nb09-34 and nb09-38 in gpu
ADVERSARIAL = {"standard": Variant("standard"), "FGSM-trained": Variant("FGSM-trained", adversarial="fgsm", eps=EPS),
               "PGD-trained": Variant("PGD-trained", adversarial="pgd", eps=EPS)}

REG_SIZES = small_data_sizes("cpu")
REGULARISERS = {v.name: v for v in regulariser_variants(REG_SIZES.steps)}
CREDITED = ("dropout 0.1", "attention dropout 0.1")   # the regularisers the notebook credits with a gain


@functools.cache
def _schedule(name: str, seed: int) -> tuple[float, dict[float, dict[str, float]]]:
    """(test token accuracy, section 6's corruption shares at each rate) of one warm-up run."""
    norm_first, warmup = SCHEDULES[name]
    variant = Variant(name, lr=HIGH_LR, warmup_steps=warmup, norm_first=norm_first)
    run = run_variant("reverse", variant, seed, sizes_for("reverse", "gpu"), steps=SCHEDULE_STEPS, n_layers=LAYERS)
    corruption = {rate: reverse_corruption(run.model, run.extras["test"], rate, seed=seed) for rate in CORRUPTION_RATES}
    print(name, seed, run.metrics["test_token_accuracy"], corruption)
    return run.metrics["test_token_accuracy"], corruption


@functools.cache
def _adversarial(name: str, seed: int) -> tuple[float, float, float]:
    """(clean, PGD, Gaussian-noise σ = 0.2) test accuracy, as cell nb09-28 measures them."""
    run = run_variant("digits", ADVERSARIAL[name], seed, sizes_for("digits", "gpu"), steps=DIGIT_STEPS)
    images, labels = run.extras["data"].test.tensors
    clean, robust = run.metrics["test_accuracy"], robust_accuracy(run.model, images, labels, "pgd", EPS, seed=seed)
    noisy = gaussian_noise(images, 0.2, clamp=(0.0, 1.0), generator=torch.Generator().manual_seed(seed))
    noise = accuracy(digits_probs(run.model, noisy), labels)
    print(name, seed, "clean", clean, "PGD", robust, "noise 0.2", noise)
    return clean, robust, noise


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_pre_ln_with_a_warm_up_learns_reverse_at_a_high_lr(schedule, seed):
    assert _schedule(schedule, seed)[0] >= 0.95


@pytest.mark.parametrize("seed", SEEDS)
def test_corruption_stays_at_the_corrupted_sources(seed):
    """Cell nb09-36 in gpu, on section 2's warmed-up pre-LN encoders: at every corruption rate the outputs
    whose source was kept stay right (> 0.99) and each corrupted output copies the new digit (> 0.99)."""
    _, corruption = _schedule("pre-LN warm", seed)
    for rate, shares in corruption.items():
        assert shares["outputs whose source was kept"] > 0.99, (rate, shares)
        assert shares["corrupted outputs copy the new digit"] > 0.99, (rate, shares)


def test_pgd_costs_the_standard_model_more_than_twice_as_much_noise():
    """Cell nb09-32's first claim in gpu: a 7-step PGD at ε = 0.1 leaves the standard model less accuracy
    than Gaussian noise of σ = 0.2 does, by more than 0.1 (means over seeds 0-2)."""
    runs = [_adversarial("standard", s) for s in SEEDS]
    robust, noise = np.mean([r[1] for r in runs]), np.mean([r[2] for r in runs])
    print("standard model: PGD", robust, "noise 0.2", noise)
    assert robust < noise - 0.1, (robust, noise)     # the worst case is far below the random case


def test_adversarial_training_buys_robust_accuracy_and_at_this_budget_no_clean_accuracy():
    """Measured (seeds 0-2, means): clean 0.982 standard, 0.984 FGSM-, 0.988 PGD-trained; PGD accuracy
    0.605, 0.821, 0.823. The cpu profile's clean cost (0.96 -> 0.86-0.88) does not survive 1,500 steps,
    so the notebook asserts that cost in cpu only and states these numbers for gpu."""
    runs = {name: [_adversarial(name, s) for s in SEEDS] for name in ADVERSARIAL}
    clean, robust = ({name: np.mean([run[k] for run in r]) for name, r in runs.items()} for k in range(2))
    print("clean", clean, "PGD", robust)
    assert robust["PGD-trained"] > robust["standard"] + 0.1 and robust["FGSM-trained"] > robust["standard"] + 0.1
    assert clean["PGD-trained"] > clean["standard"] - 0.02, clean   # the prose's "the cost vanished"


@functools.cache
def _regularised(name: str, seed: int) -> tuple[dict, int, float]:
    """(final metrics, step of the lowest val loss, val token accuracy's change over the last 100 steps)."""
    run = run_variant("sort", REGULARISERS[name], seed, REG_SIZES)
    plateau = late_change(run.history, "token_accuracy", 100)
    print(name, seed, {k: round(v, 3) for k, v in run.metrics.items()}, "best val loss at", run.history.best_step,
          "late change", round(plateau, 3))
    return run.metrics, run.history.best_step, plateau


@pytest.mark.parametrize("seed", SEEDS)
def test_the_small_data_baseline_over_fits_and_has_plateaued(seed):
    metrics, best_step, plateau = _regularised("baseline", seed)
    assert metrics["train_token_accuracy"] >= 0.99 and metrics["test_token_accuracy"] <= 0.85, metrics
    assert best_step <= REG_SIZES.steps - 4 * REG_SIZES.eval_every, best_step   # the val loss turned up
    assert abs(plateau) < 0.03, plateau


def test_dropout_and_attention_dropout_raise_test_accuracy_on_every_seed():
    baseline = [_regularised("baseline", s)[0]["test_token_accuracy"] for s in SEEDS]
    for name in CREDITED:
        runs = [_regularised(name, s) for s in SEEDS]
        gains = [m["test_token_accuracy"] - b for (m, _, _), b in zip(runs, baseline, strict=True)]
        print(name, "gains over the baseline, per seed:", np.round(gains, 3))
        assert all(abs(plateau) < 0.03 for _, _, plateau in runs), runs      # a plateau, at the same budget
        assert min(gains) > 0 and np.mean(gains) > 0.01, (name, gains)


@functools.cache
def _ensemble() -> tuple[torch.Tensor, torch.Tensor]:
    """Section 7 at the gpu budget: K = 5 digits models, seeds 0-4, all on data split 0 (cell nb09-38):
    (member probabilities (K, N, 10), test labels (N,))."""
    members = [run_variant("digits", Variant("member"), seed, sizes_for("digits", "gpu"), steps=DIGIT_STEPS,
                           data_seed=0) for seed in range(ENSEMBLE_SIZE)]
    images, labels = members[0].extras["data"].test.tensors
    return torch.stack([digits_probs(m.model, images) for m in members]), labels


def test_the_ensemble_is_more_accurate_than_its_average_member_and_under_confident():
    """Cell nb09-42 in gpu: the ensemble's accuracy is above its members' mean, and its mean confidence
    (top probability) is below its accuracy."""
    member_probs, labels = _ensemble()
    ensemble = member_probs.mean(0)                                  # (N, 10)
    member_acc = [accuracy(p, labels) for p in member_probs]
    ens_acc, confidence = accuracy(ensemble, labels), ensemble.max(-1).values.mean().item()
    print("members", np.round(member_acc, 4), "ensemble", ens_acc, "mean confidence", confidence)
    assert ens_acc > np.mean(member_acc), (ens_acc, member_acc)
    assert confidence < ens_acc, (confidence, ens_acc)
