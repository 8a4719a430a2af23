"""Lesson 11 at the gpu profile's budgets, seeds 0-2: every claim the notebook asserts outside smoke
(make test-long; not in CI). Measured 9 min 24 s on its own process while the two cores were shared
with other runs (inflated), most of it the click models (20,000 examples, 3,000 steps, three poolings
per seed: 86-189 s a seed); the forecasters and the text models have the same budget in cpu and gpu.

Measured (gpu budget, seeds 0, 1, 2): window query − AR MASE +0.003 [-0.020, +0.022], -0.005
[-0.026, +0.011], +0.004 [-0.018, +0.024] (AR 0.206); one-query weight on lags 12/24/36: 0.31, 0.02,
0.45; AUC target / mean / sum 0.998 / 0.797 / 0.737, 0.996 / 0.798 / 0.744, 1.000 / 0.802 / 0.730;
text deletion drop top-2 vs random 0.113 vs 0.030, 0.159 vs 0.045, 0.083 vs 0.034.

The claims, as nb11 states and asserts them:
- forecasting: both attention forecasters beat seasonal naive by more than half (MASE); the one
  with a query from the window is on par with the linear AR (the 90 % block-bootstrap interval of
  the MASE difference within ±15 % of the AR's MASE); the one-learned-query profile puts more than
  3x the uniform weight on lags 12, 24, 36 in at least two of the three seeds;
- recommendation: target attention beats mean pooling and sum pooling by more than 0.1 AUC, and its
  top weight is on the relevant item more than 5x as often as chance;
- text: deleting the 2 most attended words costs more than deleting 2 random ones (by > 0.02), and
  bag-of-words logistic regression is at least as accurate as attention pooling.
"""

import functools

import pytest
import torch

from attnflex_lab.recipes import applications as apps
from tests.learning import SEEDS
from tests.test_learning_apps import ONE_QUERY, SEASONAL_LAGS, check_forecasters

pytestmark = [pytest.mark.long, pytest.mark.usefixtures("one_torch_thread")]


@functools.cache
def _forecast(seed):
    torch.set_num_threads(1)
    return apps.run_forecast(seed, profile_name="gpu")


@pytest.mark.parametrize("seed", SEEDS)
def test_forecasters_at_the_gpu_budget(seed):
    check_forecasters(_forecast(seed), f"gpu seed {seed}")


def test_one_learned_query_weighs_the_season_in_two_of_three_seeds_at_the_gpu_budget():
    mass = [float(_forecast(seed).lag_weights[ONE_QUERY].mean(0)[SEASONAL_LAGS].sum()) for seed in SEEDS]
    print(f"gpu: weight on lags 12, 24, 36 per seed {mass}")
    assert sum(m > 3 * 3 / 36 for m in mass) >= 2, mass


@pytest.mark.parametrize("seed", SEEDS)
def test_target_attention_at_the_gpu_budget(seed):
    torch.set_num_threads(1)
    run = apps.run_clicks(seed, profile_name="gpu")
    print(f"gpu seed {seed}: AUC {run.auc}, top-1 {run.top1['target']:.3f}, chance {run.chance_top1:.3f}")
    for control in ("mean", "sum"):
        assert run.auc["target"] > run.auc[control] + 0.1, run.auc
    assert run.top1["target"] > 5 * run.chance_top1, (run.top1, run.chance_top1)


@pytest.mark.parametrize("seed", SEEDS)
def test_text_claims_at_the_gpu_budget(seed):
    torch.set_num_threads(1)
    run = apps.run_text(seed, profile_name="gpu")
    print(f"gpu seed {seed}: accuracy {run.accuracy}, drops {run.deletion_drop}, "
          f"attention − mean {run.accuracy_difference('attention pooling', 'mean pooling')}")
    assert run.deletion_drop["top-k attended"] > run.deletion_drop["random k"] + 0.02, run.deletion_drop
    assert run.accuracy["bag-of-words logistic regression"] >= run.accuracy["attention pooling"], run.accuracy
