"""Learning checks: in the cpu profile the tiny transformer really learns sort and reverse."""

import pytest

from attnflex_lab.recipes import train_recipe


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.parametrize("task", ["sort", "reverse"])
def test_tiny_transformer_learns(task):
    metrics, _, history = train_recipe(task, profile_name="cpu", seed=0, progress=False)
    print(task, {k: v for k, v in metrics.items() if k != "weights_sha256"})
    assert metrics["test_exact_match"] >= 0.99, metrics
    assert history.final_loss < history.steps[0]["loss"] / 20
