"""Learning checks (cpu profile) for lesson 03 on the 8x8 digits (seed 0 in `make test`; seeds 1, 2 and
the checks over all three in `make test-long`): the "digits" recipe's model
(the notebook trains with the recipe's settings) learns, and does what the lesson says.

- mean test accuracy >= 0.97 over seeds 0, 1, 2 (each seed its own split), none below 0.96;
- the trained attention concentrates on one region (section 6);
- mean pooling is as good as attention pooling, within two points on each split and on average
  (section 7).
"""

import math

import pytest
import torch

from attnflex_lab.metrics import attention_entropy
from attnflex_lab.recipes.digits import predict
from tests.learning import SEED0_HERE_REST_LONG, SEEDS, trained

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)
def test_digits_attention_classifier_learns_and_looks_at_one_region(seed):
    """Each split alone (one training run per test): accuracy, and lesson 03's section 6."""
    metrics, run = trained("digits", seed)
    assert metrics["test_accuracy"] >= 0.96, metrics
    test = run.extras["data"].test
    predictions, alpha = predict(run.model.eval(), test)              # (N,), (N, 16)
    right = predictions == test.tensors[1]
    top_weight, entropy = alpha.max(-1).values.mean().item(), attention_entropy(alpha[right])
    print(f"seed {seed}: mean top weight {top_weight:.4f}, entropy on correct predictions {entropy:.4f} nats")
    assert top_weight > 0.9 and entropy < 0.1 * math.log(16), (top_weight, entropy)


@pytest.mark.long
def test_digits_mean_test_accuracy_over_three_splits():
    scores = [trained("digits", seed)[0]["test_accuracy"] for seed in SEEDS]   # trained above already
    mean = sum(scores) / len(scores)
    assert mean >= 0.97, f"test accuracies {scores}, mean {mean:.4f}"


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)
def test_digits_mean_pooling_is_as_good_as_attention(seed):
    """Lesson 03, section 7: on every split the mean-pooling baseline is within two points."""
    attention = trained("digits", seed)[0]["test_accuracy"]
    mean_pool = trained("digits_mean", seed)[0]["test_accuracy"]
    print(f"seed {seed}: attention {attention:.4f}, mean pooling {mean_pool:.4f}")
    assert mean_pool >= attention - 0.02, f"mean pooling {mean_pool:.4f} vs attention {attention:.4f}"
    assert mean_pool >= 0.95, f"mean pooling {mean_pool:.4f}: the notebook's 'it learned too' (cell 03-037)"


@pytest.mark.long
def test_digits_pooling_over_three_seeds():
    """Lesson 03, section 7: the 8x8 tie as mean ± sd over seeds 0, 1, 2 (reusing the runs above)."""
    att = torch.tensor([trained("digits", s)[0]["test_accuracy"] for s in SEEDS])
    mean_pool = torch.tensor([trained("digits_mean", s)[0]["test_accuracy"] for s in SEEDS])
    print(f"8x8: attention {att.mean():.4f} ± {att.std():.4f}, mean {mean_pool.mean():.4f} ± {mean_pool.std():.4f}")
    assert mean_pool.mean() >= att.mean() - 0.02, (att, mean_pool)


@pytest.mark.long
def test_without_p_t_the_model_is_as_good_and_still_reads_one_region_at_the_cpu_budget():
    from tests.long.test_long_lesson03 import check_p_t_ablation  # one check, both budgets
    check_p_t_ablation("cpu")
