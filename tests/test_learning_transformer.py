"""Learning checks (cpu profile): lesson 05's transformers learn, and their heads read as it says.

Lesson 05 trains these same recipes; in ``smoke`` it only checks that the loss fell, so what it
claims about the trained models is checked here:

- reverse and sort: exact match >= 0.99 on held-out sequences;
- reverse: one head is the reversal, its strongest weight on the true source position >= 0.9;
- sort: no single head does the whole job (the best head reads the right digit < 0.9 of the time);
- reverse (lesson 12): activation patching finds the answer moved by layer 0, to the mirrored position
  (the same run, trained once per process; the ViT's check is in test_learning_reading.py).
"""

import pytest
import torch

from attnflex_lab.analysis import interp
from attnflex_lab.recipes.sequence import best_head_alignment

from .learning import trained, training_run

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("task", ["sort", "reverse"])
def test_tiny_transformer_learns(task):
    metrics, _, history = training_run(task, 0, "cpu")   # the key trained() uses: one run per process
    print(task, {k: v for k, v in metrics.items() if k != "weights_sha256"})
    assert metrics["test_exact_match"] >= 0.99, metrics
    assert history.final_loss < history.steps[0]["loss"] / 20
    if task == "reverse":   # one head is the anti-diagonal
        assert metrics["alignment_accuracy"] >= 0.9, metrics
    else:                   # sort is assembled across heads and layers
        assert metrics["alignment_accuracy"] < 0.9, metrics


def test_patching_finds_where_reverse_moves_the_answer():
    _, run = trained("reverse", 0)
    model, test = run.model.cpu().eval(), run.extras["test"]
    x = test.x[:256]                                                  # (N, T)
    T = x.shape[1]
    rows = torch.arange(len(x))
    _, (best_layer, best_head) = best_head_alignment(model, test)
    for j in (1, T - 2):
        corrupt = x.clone()
        corrupt[:, j] = (x[:, j] + 1 + rows % 9) % 10                 # another digit at position j
        answer = T - 1 - j

        def margin(logits, j=j, corrupt=corrupt, answer=answer):
            return (logits[rows, answer, x[:, j]] - logits[rows, answer, corrupt[:, j]]).mean().item()

        effects = interp.patching_effects(model, x, corrupt, margin)
        resid = effects["residual"]                                   # (L + 1, T)
        print(j, resid, effects["heads"])
        assert resid[0, j] > 0.95 and resid[1, answer] > 0.95, resid  # layer 0 moves it from j to T-1-j
        assert resid[1, j] < 0.05, resid                              # ... and nothing is left at j
        assert effects["heads"][1].abs().max() < 0.05, effects        # layer 1's heads carry none of it
        assert effects["heads"][0].argmax().item() == best_head and best_layer == 0, (effects, best_head)
