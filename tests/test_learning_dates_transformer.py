"""Learning check (cpu profile): lesson 05's transformer encoder–decoder learns the dates, and a
cross-attention head tracks the copied source character.

What the lesson claims about the trained model, checked here:
- exact match >= EXACT_MIN (0.95) on held-out dates;
- the best cross-attention head puts its strongest weight exactly on the true source character
  at least ALIGN_MIN (0.9) of the time (seed 0; seed 2 measured 0.89, so only seed 0 is held to it);
- at the lesson's budgets (the transformer's cpu recipe, 400 steps; Bahdanau's "dates" for
  BAHDANAU_CPU_STEPS = 300, batch 64 both), the best head and the last layer's heads averaged align
  exactly more often than Bahdanau's α, by ALIGN_MARGIN or more on each of seeds 0, 1, 2
  (make test-long-cpu: four more training runs).
"""

import functools

import pytest

from attnflex_lab.recipes import train_recipe
from attnflex_lab.recipes.dates_transformer import ALIGN_MARGIN, ALIGN_MIN, BAHDANAU_CPU_STEPS, EXACT_MIN
from tests.learning import SEEDS, training_run

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_transformer_translates_dates_and_a_cross_attention_head_aligns():
    metrics, _, history = training_run("dates_transformer", 0)
    print({k: v for k, v in metrics.items() if k != "weights_sha256"})
    assert metrics["exact_match"] >= EXACT_MIN, metrics
    assert metrics["alignment_exact"] >= ALIGN_MIN, metrics
    assert history.final_loss < history.steps[0]["loss"] / 20


@functools.cache
def bahdanau_beside(seed: int) -> dict:
    """Metrics of Bahdanau's recipe "dates" as lesson 05 trains it beside the transformer in cpu
    (BAHDANAU_CPU_STEPS, not lesson 04's 800; tests.learning caches only the recipes' own budgets)."""
    metrics, _, _ = train_recipe("dates", profile_name="cpu", seed=seed, progress=False, steps=BAHDANAU_CPU_STEPS)
    return metrics


@pytest.mark.long
@pytest.mark.parametrize("seed", SEEDS)
def test_cross_attention_aligns_more_exactly_than_bahdanau_at_the_lessons_budgets(seed):
    """Lesson 05, section 3's prediction, answered at these budgets (not matched ones: 400 vs 300 steps)."""
    transformer, _, _ = training_run("dates_transformer", seed)
    bahdanau = bahdanau_beside(seed)
    scores = {"bahdanau": bahdanau["alignment_exact"], "best head": transformer["alignment_exact"],
              "heads averaged": transformer["alignment_mean_heads"]}
    print(f"seed {seed}, exact alignment: {scores}")
    assert bahdanau["steps"] == BAHDANAU_CPU_STEPS, bahdanau["steps"]
    assert scores["best head"] >= scores["bahdanau"] + ALIGN_MARGIN, scores
    assert scores["heads averaged"] >= scores["bahdanau"] + ALIGN_MARGIN, scores
