"""Learning checks (cpu profile) for lesson 03, section 8: a digit among clutter on a 16x16 canvas.

After the cpu profile's 500 steps attention pooling is ahead of mean pooling by >= CANVAS_GAP on
each of seeds 0, 1, 2 and in mean - sd, with >= CANVAS_MASS of its weight on the digit's regions.
That is an early stop: attention learns faster. Trained to a plateau (the gpu profile) mean pooling
catches up, which tests/long/test_long_lesson03.py checks.
"""

import pytest
import torch
from torch.utils.data import TensorDataset

from attnflex_lab.recipes.digits import erasure_effects, predict
from attnflex_lab.tasks.canvas import digit_regions
from tests.learning import SEED0_HERE_REST_LONG, SEEDS, trained

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

CANVAS_ACCURACY, CANVAS_MASS, CANVAS_GAP = 0.5, 0.8, 0.2   # lesson 03, section 8


def canvas_scores(name: str, seed: int, profile_name: str = "cpu") -> tuple[float, float]:
    """(test accuracy, mean attention mass on the digit's regions) of a digits_canvas* recipe."""
    metrics, run = trained(name, seed, profile_name)
    images, labels, corners = run.extras["data"].test.tensors
    _, alpha = predict(run.model.eval(), TensorDataset(images, labels))       # (N, 64)
    on_digit = digit_regions(corners, images.shape[-1])                       # (N, 64)
    return metrics["test_accuracy"], (alpha * on_digit).sum(-1).mean().item()


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)  # 1, 2: make test-long
def test_canvas_attention_learns_and_finds_the_digit(seed):
    """One training run per test: attention pooling learns, and its weight sits on the digit."""
    acc, mass = canvas_scores("digits_canvas", seed)
    print(f"seed {seed}: attention accuracy {acc:.4f}, attention mass on the digit {mass:.4f}")
    assert acc >= CANVAS_ACCURACY and mass >= CANVAS_MASS, (acc, mass)


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)  # 1, 2: make test-long
def test_canvas_attention_is_ahead_after_500_steps(seed):
    """Lesson 03, section 8 in cpu: an early stop, so this is who learns faster (at 3,000 steps mean
    pooling catches up: tests/long/test_long_lesson03.py)."""
    attention, mean_pool = canvas_scores("digits_canvas", seed)[0], canvas_scores("digits_canvas_mean", seed)[0]
    print(f"seed {seed}: attention {attention:.4f}, mean pooling {mean_pool:.4f}")
    assert attention - mean_pool >= CANVAS_GAP, (attention, mean_pool)


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)  # 1, 2: make test-long
def test_canvas_erasing_what_the_attention_reads(seed):
    """Lesson 03's erase widget (cpu, 500 steps; measured on seeds 0, 1, 2): blanking the single
    most-attended region (4 of 256 pixels) costs >= 0.15 accuracy while the attention stays on the
    digit; blanking the digit leaves chance; blanking the clutter costs nothing. Reuses the run above."""
    _, run = trained("digits_canvas", seed)
    effects = erasure_effects(run.model.eval(), run.extras["data"].test)
    print(f"seed {seed}:", {k: {m: round(v, 3) for m, v in e.items()} for k, e in effects.items()})
    intact = effects["nothing"]["accuracy"]
    top = effects["the most-attended region"]
    assert top["accuracy"] <= intact - 0.15 and top["mass_on_digit"] >= CANVAS_MASS, (intact, top)
    assert effects["every region on the digit"]["accuracy"] <= 0.2, effects
    assert effects["the digit, except its most-attended region"]["accuracy"] <= 0.2, effects
    assert effects["the clutter (every region off the digit)"]["accuracy"] >= intact - 0.02, effects


@pytest.mark.long  # all three seeds: make test-long
def test_canvas_over_three_seeds():
    """Lesson 03, section 8 (cpu, 500 steps): mean ± sd over seeds 0, 1, 2 (reusing the runs above)."""
    att = torch.tensor([canvas_scores("digits_canvas", s)[0] for s in SEEDS])
    mean_pool = torch.tensor([canvas_scores("digits_canvas_mean", s)[0] for s in SEEDS])
    print(f"attention {att.mean():.4f} ± {att.std():.4f}, mean pooling {mean_pool.mean():.4f} ± {mean_pool.std():.4f}")
    gap = att - mean_pool
    assert gap.mean() - gap.std() >= CANVAS_GAP, gap
