"""Learning check (cpu profile): lesson 05's transformer encoder–decoder learns the dates, and a
cross-attention head tracks the copied source character.

What the lesson claims about the trained model, checked here:
- exact match >= EXACT_MIN (0.95) on held-out dates;
- the best cross-attention head puts its strongest weight exactly on the true source character
  at least ALIGN_MIN (0.9) of the time.
"""

import pytest

from attnflex_lab.recipes import train_recipe
from attnflex_lab.recipes.dates_transformer import ALIGN_MIN, EXACT_MIN

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_transformer_translates_dates_and_a_cross_attention_head_aligns():
    metrics, _, history = train_recipe("dates_transformer", profile_name="cpu", seed=0, progress=False)
    print({k: v for k, v in metrics.items() if k != "weights_sha256"})
    assert metrics["exact_match"] >= EXACT_MIN, metrics
    assert metrics["alignment_exact"] >= ALIGN_MIN, metrics
    assert history.final_loss < history.steps[0]["loss"] / 20
