"""Learning checks (cpu profile) for lesson 09's headline claims, which smoke cannot show:

- warm-up at a high lr: a 4-layer post-LN encoder trained on reverse at lr 3e-2 stays near chance
  without a warm-up (seeds 0 and 1) and learns the task with one (seed 0);
- adversarial training: an FGSM-trained digits classifier keeps far more accuracy under a 7-step
  PGD attack (ε = 0.1) than a standard one, at a small cost in clean accuracy.

Sizes are the notebook's cpu sizes (``sizes_for(..., "cpu")`` with the lesson's overrides).
"""

import pytest

from attnflex_lab.recipes.variants import Variant, robust_accuracy, run_variant, sizes_for

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

HIGH_LR = 3e-2
STEPS = 150         # the notebook's SCHEDULE_STEPS in cpu
LAYERS = 4


def _reverse(seed, warmup_steps):
    variant = Variant("post-LN", lr=HIGH_LR, warmup_steps=warmup_steps, norm_first=False)
    run = run_variant("reverse", variant, seed, sizes_for("reverse", "cpu"), steps=STEPS, n_layers=LAYERS)
    return run.metrics["test_token_accuracy"]


def test_post_ln_at_a_high_lr_needs_warm_up():
    without = [_reverse(seed, 0) for seed in (0, 1)]
    with_warm_up = _reverse(0, STEPS // 5)
    print(f"post-LN lr {HIGH_LR}: token accuracy without warm-up {without}, with warm-up {with_warm_up:.3f}")
    assert max(without) < 0.5, without            # near chance (0.1): training broke early
    assert with_warm_up > 0.95, with_warm_up      # the same lr with a warm-up learns the task


def test_adversarial_training_raises_robust_accuracy():
    sizes = sizes_for("digits", "cpu")
    results = {}
    for variant in (Variant("standard"), Variant("FGSM-trained", adversarial="fgsm", eps=0.1)):
        run = run_variant("digits", variant, 0, sizes, steps=200)
        images, labels = run.extras["data"].test.tensors
        results[variant.name] = (run.metrics["test_accuracy"], robust_accuracy(run.model, images, labels, "pgd", 0.1))
    print("(clean, PGD ε=0.1) accuracy:", results)
    (clean_std, robust_std), (clean_adv, robust_adv) = results["standard"], results["FGSM-trained"]
    assert robust_adv > robust_std + 0.1, results    # robust accuracy rises a lot ...
    assert clean_adv > clean_std - 0.2, results      # ... for some loss of clean accuracy
    assert clean_std > 0.9, results                  # the baseline really learned the digits
