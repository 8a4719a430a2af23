"""Learning checks (cpu profile) for lesson 12's claims about trained models, which smoke cannot show.

On the digits ViT, each of three seeds (a different split and initialisation):
- faithfulness: integrated gradients' deletion AUC is more than 0.1 below a random order's, raw
  attention's and rollout's, its insertion AUC above all three (by 0.1 over random); gradient ×
  input beats random on deletion (whether attention beats random depends on the seed, so nothing
  is claimed about that);
- attention and rollout rank the patches only weakly like integrated gradients (Spearman < 0.4);
- yet the model needs its attention: uniform attention (Wiegreffe & Pinter's baseline) in every layer
  drops it to near chance, while uniform attention in the last layer only (the map that is read)
  keeps it more than 0.2 above that;
- greedy head pruning keeps accuracy within 0.1 with a third of the heads gone.
And lesson 05's claim that the small ViT reaches test accuracy >= 0.9 (same run as seed 0 above).
Every claim lesson 12 asserts in cpu, at the notebook's cpu sizes (the fills, the randomised-weights
check, the adversarial search, pruning, int8: tests/reading_claims.py), runs in make test-long-cpu on
seeds 0-2; the same checks at the gpu budget are tests/long/test_long_lesson12.py.
"""

import pytest
import torch.nn.functional as F

from attnflex_lab.analysis import explain, interp
from attnflex_lab.recipes.vit import vit_eval

from .learning import SEED0_HERE_REST_LONG, SEEDS, trained, training_run
from .reading_claims import check_claims, measured

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)  # seeds 1 and 2: make test-long
def test_reading_the_digits_vit(seed):
    metrics, run = trained("vit", seed)
    model, data = run.model.cpu().eval(), run.extras["data"]     # trained on the CPU or a GPU
    images = data.test.tensors[0][:160]
    scores = explain.vit_explanations(model, images, ig_steps=32)
    table = explain.faithfulness_table(model, images, scores, model.cfg.patch_size, seed=seed)
    print(seed, metrics["test_accuracy"], {k: {m: round(v, 3) for m, v in row.items()} for k, row in table.items()})
    deletion = {name: row["deletion"] for name, row in table.items()}
    insertion = {name: row["insertion"] for name, row in table.items()}
    for name in ("attention", "rollout", "random"):
        assert deletion["integrated gradients"] < deletion[name] - 0.1, table
        assert insertion["integrated gradients"] > insertion[name], table
    assert insertion["integrated gradients"] > insertion["random"] + 0.1, table
    assert deletion["grad×input"] < deletion["random"], table
    for name in ("attention", "rollout"):
        agreement = explain.rank_agreement(scores[name], scores["integrated gradients"]).mean().item()
        assert agreement < 0.4, (name, agreement)

    with interp.uniform_attention(model):
        uniform = vit_eval(model, data.test)["accuracy"]
    assert uniform < 0.3 < metrics["test_accuracy"] - 0.5, (uniform, metrics)
    with interp.uniform_attention(model, layers=[-1]):
        last_only = vit_eval(model, data.test)["accuracy"]
    assert last_only > uniform + 0.2, (last_only, uniform)

    x_val, y_val = data.val.tensors
    curve = interp.greedy_pruning_curve(model, lambda m: F.cross_entropy(m(x_val), y_val).item(),
                                        lambda m: vit_eval(m, data.test)["accuracy"])
    kept, total = dict(curve), curve[0][0]
    print(seed, "uniform", uniform, "pruning", [round(a, 3) for _, a in curve])
    assert kept[total - total // 3] >= kept[total] - 0.1, curve


def test_vit_learns_the_digits():
    metrics, _, history = training_run("vit", 0, "cpu")    # the run test_reading_the_digits_vit[0] reads
    print({k: v for k, v in metrics.items() if k != "weights_sha256"})
    assert metrics["test_accuracy"] >= 0.9, metrics
    assert history.final_loss < history.steps[0]["loss"]


@pytest.mark.long
@pytest.mark.parametrize("seed", SEEDS)
def test_lesson12_claims_hold_at_the_cpu_budget(seed):
    check_claims(measured("cpu", seed))
