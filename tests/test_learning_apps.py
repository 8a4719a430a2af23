"""Learning checks (cpu profile) for lesson 11's applications, with the notebook's own code
(``attnflex_lab.recipes.applications``, where the validation split picks each model's weights and
each baseline's penalty), so what the lesson says about trained models holds:

- forecasting: both attention forecasters beat seasonal naive on the held-out CO2 tail (MASE under
  half of it); the one with a query from the window is on par with the linear AR: the 90 % block-
  bootstrap interval of the MASE difference over the test months lies within ±15 % of the AR's MASE
  (measured, seeds 0-2: +0.003 [-0.020, 0.022], -0.005 [-0.026, 0.011], +0.004 [-0.018, 0.024] against
  an AR at 0.206); the one-learned-query model puts more than 3x the uniform weight on lags 12, 24, 36
  in at least two of the three seeds (measured: 0.31, 0.02, 0.45);
- recommendation: target attention beats mean pooling and sum pooling (the control without
  candidate-dependent weights) by more than 0.1 AUC, and its top weight is on the relevant history
  item more than 5x as often as chance (seed 0: AUC 0.94 / 0.67 / 0.58);
- text: removing the 2 most attended words costs more accuracy than removing 2 random words;
  bag-of-words logistic regression is at least as accurate as attention pooling.

Seed 0 runs in ``make test``; seeds 1 and 2 (and the three-seed check) in ``make test-long``.
"""

import functools

import numpy as np
import pytest

from attnflex_lab.recipes import applications as apps
from tests.learning import SEED0_HERE_REST_LONG, SEEDS

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
SEASONAL_LAGS = [11, 23, 35]            # columns of lags 12, 24, 36
WINDOW, ONE_QUERY = "attention (query from window)", "attention (one learned query)"
ON_PAR = 0.15                           # "on par": the interval of the difference within ±15 % of the AR


@functools.cache
def forecast(seed):
    return apps.run_forecast(seed, profile_name="cpu")


@functools.cache
def text(seed):
    return apps.run_text(seed, profile_name="cpu")


def on_par(run) -> bool:
    """The window-query forecaster's MASE minus the AR's: its 90 % interval inside ±15 % of the AR."""
    _, low, high = run.mase_difference(WINDOW, "linear AR")
    margin = ON_PAR * run.mase["linear AR"]
    return -margin < low and high < margin


def check_forecasters(run, label: str) -> None:
    """nb11's forecasting claims: both attention forecasters beat seasonal naive by half; the window one is on par."""
    print(f"{label}: MASE {run.mase}, chosen {run.chosen}, window − AR {run.mase_difference(WINDOW, 'linear AR')}")
    for name in (WINDOW, ONE_QUERY):
        assert run.mase[name] < 0.5 * run.mase["seasonal naive"], (name, run.mase)
    assert on_par(run), (run.mase_difference(WINDOW, "linear AR"), run.mase["linear AR"])


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)
def test_attention_forecasters_beat_seasonal_naive_and_match_the_ar(seed):
    run = forecast(seed)
    check_forecasters(run, f"seed {seed}")
    assert run.chosen["AR ridge"] in apps.AR_RIDGES and 0 < run.chosen[f"{WINDOW}: best step"] <= 1000


@pytest.mark.long
def test_one_learned_query_weighs_the_season_in_two_of_three_seeds():
    mass = [forecast(seed).lag_weights[ONE_QUERY].mean(0)[SEASONAL_LAGS].sum() for seed in SEEDS]
    print(f"weight on lags 12, 24, 36 per seed: {np.round(mass, 3)} (uniform: {3 / 36:.3f})")
    assert sum(m > 3 * 3 / 36 for m in mass) >= 2, mass


def test_target_attention_beats_mean_and_sum_pooling_and_finds_the_relevant_item():
    run = apps.run_clicks(0, profile_name="cpu")
    print(f"AUC {run.auc}, top-1 on the relevant item {run.top1}, chance {run.chance_top1:.3f}")
    for control in ("mean", "sum"):
        assert run.auc["target"] > run.auc[control] + 0.1, run.auc
    assert run.top1["target"] > 5 * run.chance_top1, (run.top1, run.chance_top1)


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)
def test_deleting_attended_words_hurts_more_than_deleting_random_words(seed):
    run = text(seed)
    print(f"seed {seed}: accuracy {run.accuracy}, chosen {run.chosen}, deletion drops {run.deletion_drop}, "
          f"attention − mean {run.accuracy_difference('attention pooling', 'mean pooling')}")
    assert run.deletion_drop["top-k attended"] > run.deletion_drop["random k"] + 0.02, run.deletion_drop
    assert run.accuracy["bag-of-words logistic regression"] >= run.accuracy["attention pooling"], run.accuracy
    assert run.chosen["logistic C"] in apps.LOGISTIC_CS
