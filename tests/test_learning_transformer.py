"""Learning checks (cpu profile): lesson 05's transformers learn, and their heads read as it says.

Lesson 05 trains these same recipes; in ``smoke`` it only checks that the loss fell, so what it
claims about the trained models is checked here:

- reverse and sort: exact match >= 0.99 on held-out sequences;
- reverse: one head is the reversal, its strongest weight on the true source position >= 0.9;
- sort: no single head does the whole job (the best head reads the right digit < 0.9 of the time);
- the small ViT reaches test accuracy >= 0.9 on the digits.
"""

import pytest

from attnflex_lab.recipes import train_recipe

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("task", ["sort", "reverse"])
def test_tiny_transformer_learns(task):
    metrics, _, history = train_recipe(task, profile_name="cpu", seed=0, progress=False)
    print(task, {k: v for k, v in metrics.items() if k != "weights_sha256"})
    assert metrics["test_exact_match"] >= 0.99, metrics
    assert history.final_loss < history.steps[0]["loss"] / 20
    if task == "reverse":   # one head is the anti-diagonal
        assert metrics["alignment_accuracy"] >= 0.9, metrics
    else:                   # sort is assembled across heads and layers
        assert metrics["alignment_accuracy"] < 0.9, metrics


def test_vit_learns_the_digits():
    metrics, _, history = train_recipe("vit", profile_name="cpu", seed=0, progress=False)
    print({k: v for k, v in metrics.items() if k != "weights_sha256"})
    assert metrics["test_accuracy"] >= 0.9, metrics
    assert history.final_loss < history.steps[0]["loss"]
