"""Learning checks (cpu profile): the models of lessons 03 and 04 learn, and do what the lessons say.

Lesson 03 trains the "digits" recipe's model with the recipe's settings (its notebook asserts that),
and lesson 04 the "dates" recipe's; in the ``smoke`` profile the notebooks can only check a weaker
version of their claims, so what they claim about a fully trained model is checked here:

- digits: mean test accuracy >= 0.97 over seeds 0, 1, 2 (each seed its own split), none below 0.96
  (lesson 03 states >= 0.95 for one run);
- digits: the trained attention concentrates on one region (lesson 03, section 6);
- digits: mean pooling is as good as attention pooling, within two points on each split and on
  average (lesson 03, section 7);
- digits on cluttered 16x16 canvases: attention pooling beats mean pooling by >= 0.2 on each split
  and in mean - sd, with >= 0.8 of its weight on the digit's regions (lesson 03, section 8);
- dates: exact match >= 0.99, exact alignment >= 0.85 with the offset histogram peaked at 0,
  alignment accuracy (argmax within ±1 of the true source character, where defined) >= 0.90, far
  above the untrained model's (lesson 04, steps 5 and 6);
- dates: the trained model translates the widget's date (lesson 04, "Try it");
- dates in filler words (lesson 04, step 7): with attention, exact match >= 0.6 in every source-length
  bin; the same network reading only the last encoder states loses by >= 0.5 in every bin, on each
  of seeds 0, 1, 2 and in mean - sd over them.

Timings live in benchmarks/bench_learning.py.
"""

import functools
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from attnflex_lab import recipes
from attnflex_lab.metrics import attention_entropy
from attnflex_lab.recipes.dates import alignment_offsets, dates_eval, new_model, translate
from attnflex_lab.recipes.digits import predict
from attnflex_lab.tasks import dates as D
from attnflex_lab.tasks.canvas import digit_regions

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SEEDS = (0, 1, 2)
EXACT_TARGET = 0.85  # lesson 04, step 6: exact alignment of the trained dates model (seed 0: 0.89)
CANVAS_ACCURACY, CANVAS_MASS, CANVAS_GAP = 0.5, 0.8, 0.2   # lesson 03, section 8
LONG_GAP = 0.5   # attention minus last-state exact match, per length bin (lesson 04, step 7)


@functools.cache
def trained(name: str, seed: int):
    """(metrics, run) of a recipe trained in the cpu profile, once per session for every test here.

    One training run is at most one test's work (each test names its seed), so no test waits for
    three; the tests that compare splits or models reuse what the others trained.
    """
    metrics, run, _ = recipes.train_recipe(name, profile_name="cpu", seed=seed, progress=False)
    return metrics, run


@pytest.mark.parametrize("seed", SEEDS)
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


def test_digits_mean_test_accuracy_over_three_splits():
    scores = [trained("digits", seed)[0]["test_accuracy"] for seed in SEEDS]   # trained above already
    mean = sum(scores) / len(scores)
    assert mean >= 0.97, f"test accuracies {scores}, mean {mean:.4f}"


@pytest.mark.parametrize("seed", SEEDS)
def test_digits_mean_pooling_is_as_good_as_attention(seed):
    """Lesson 03, section 7: on every split the mean-pooling baseline is within two points."""
    attention = trained("digits", seed)[0]["test_accuracy"]
    mean_pool = trained("digits_mean", seed)[0]["test_accuracy"]
    print(f"seed {seed}: attention {attention:.4f}, mean pooling {mean_pool:.4f}")
    assert mean_pool >= attention - 0.02, f"mean pooling {mean_pool:.4f} vs attention {attention:.4f}"


def test_dates_seq2seq_translates_and_aligns():
    metrics, run = trained("dates", 0)
    summary = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    assert metrics["exact_match"] >= 0.99, summary
    assert metrics["alignment_accuracy"] >= 0.90, summary
    assert 0 <= metrics["alignment_exact"] <= metrics["alignment_accuracy"], summary
    # lesson 04, step 6: exact alignment is the headline, and the offset histogram peaks at 0
    _, alpha = translate(run.model.eval(), run.extras["data"].test.tensors[0])   # (N, T, S)
    offsets = alignment_offsets(alpha, run.extras["data"].test.tensors[2])
    share = {o: (offsets == o).float().mean().item() for o in (-1, 0, 1)}
    print(f"alignment exact {metrics['alignment_exact']:.4f}, ±1 {metrics['alignment_accuracy']:.4f}, "
          f"offsets -1/0/+1 {share}")
    assert metrics["alignment_exact"] >= EXACT_TARGET and share[0] > 2 * max(share[-1], share[1]), share

    torch.manual_seed(0)                                   # the recipe's initial weights for seed 0
    before = dates_eval(new_model().eval(), run.extras["data"].test)
    assert before["alignment_accuracy"] < 0.5 < metrics["alignment_accuracy"], (before, summary)


def test_dates_model_translates_the_widget_date():
    _, run = trained("dates", 0)
    tokens, _ = translate(run.model.eval(), D.encode_sources(["Tuesday, March 3, 1987"]))   # (1, T)
    assert D.TARGET_VOCAB.decode(tokens[0]) == "1987-03-03"


# --- lesson 04, step 7: the bottleneck (dates in filler words, with and without attention) -------

def _long(name: str, seed: int) -> torch.Tensor:
    """Exact match per source-length bin (bins,) of a dates_long* recipe trained in cpu."""
    return torch.tensor(trained(name, seed)[0]["by_length"]["exact_match"])


@pytest.mark.parametrize("seed", SEEDS)
def test_dates_with_attention_reads_long_inputs(seed):
    """One training run per test: with attention, most dates are right in every length bin."""
    attention = _long("dates_long", seed)
    print(f"seed {seed}: attention, exact match per length bin {attention.tolist()}")
    assert (attention >= 0.6).all(), attention


@pytest.mark.parametrize("seed", SEEDS)
def test_dates_last_state_only_loses_to_attention(seed):
    """Same network, same budget, attention off: it loses by LONG_GAP or more in every bin."""
    attention, last_state = _long("dates_long", seed), _long("dates_long_noattn", seed)
    print(f"seed {seed}: attention {attention.tolist()}, last state {last_state.tolist()}")
    assert (attention - last_state >= LONG_GAP).all(), (attention, last_state)


def test_dates_bottleneck_over_three_seeds():
    """Lesson 04, step 7: the mean ± sd it prints, over seeds 0, 1, 2 (reusing the runs above)."""
    gaps = torch.stack([_long("dates_long", s) - _long("dates_long_noattn", s) for s in SEEDS])
    print(f"gap per bin: mean {gaps.mean(0).tolist()}, sd {gaps.std(0).tolist()}")
    assert (gaps.mean(0) - gaps.std(0) >= LONG_GAP).all(), gaps


# --- lesson 03, section 8: a digit among clutter on a 16x16 canvas -------------------------------

def _canvas(name: str, seed: int) -> tuple[float, float]:
    """(test accuracy, mean attention mass on the digit's regions) of a digits_canvas* recipe."""
    metrics, run = trained(name, seed)
    images, labels, corners = run.extras["data"].test.tensors
    _, alpha = predict(run.model.eval(), TensorDataset(images, labels))       # (N, 64)
    on_digit = digit_regions(corners, images.shape[-1])                       # (N, 64)
    return metrics["test_accuracy"], (alpha * on_digit).sum(-1).mean().item()


@pytest.mark.parametrize("seed", SEEDS)
def test_canvas_attention_learns_and_finds_the_digit(seed):
    """One training run per test: attention pooling learns, and its weight sits on the digit."""
    acc, mass = _canvas("digits_canvas", seed)
    print(f"seed {seed}: attention accuracy {acc:.4f}, attention mass on the digit {mass:.4f}")
    assert acc >= CANVAS_ACCURACY and mass >= CANVAS_MASS, (acc, mass)


@pytest.mark.parametrize("seed", SEEDS)
def test_canvas_mean_pooling_loses_to_attention(seed):
    attention, mean_pool = _canvas("digits_canvas", seed)[0], _canvas("digits_canvas_mean", seed)[0]
    print(f"seed {seed}: attention {attention:.4f}, mean pooling {mean_pool:.4f}")
    assert attention - mean_pool >= CANVAS_GAP, (attention, mean_pool)


def test_canvas_over_three_seeds():
    """Lesson 03, section 8: mean ± sd over seeds 0, 1, 2 (reusing the runs above)."""
    att = torch.tensor([_canvas("digits_canvas", s)[0] for s in SEEDS])
    mean_pool = torch.tensor([_canvas("digits_canvas_mean", s)[0] for s in SEEDS])
    print(f"attention {att.mean():.4f} ± {att.std():.4f}, mean pooling {mean_pool.mean():.4f} ± {mean_pool.std():.4f}")
    gap = att - mean_pool
    assert gap.mean() - gap.std() >= CANVAS_GAP, gap


def test_digits_pooling_over_three_seeds():
    """Lesson 03, section 7: the 8x8 tie as mean ± sd over seeds 0, 1, 2 (reusing the runs above)."""
    att = torch.tensor([trained("digits", s)[0]["test_accuracy"] for s in SEEDS])
    mean_pool = torch.tensor([trained("digits_mean", s)[0]["test_accuracy"] for s in SEEDS])
    print(f"8x8: attention {att.mean():.4f} ± {att.std():.4f}, mean {mean_pool.mean():.4f} ± {mean_pool.std():.4f}")
    assert mean_pool.mean() >= att.mean() - 0.02, (att, mean_pool)
