"""Lesson 10 at the gpu profile's budget (make test-long; not in CI): the claims the notebook asserts
in cpu and gpu, over seeds 0-2, with the gpu profile's rotate data (20,000 training sequences) and
fine-tuning budget (1,000 steps of 256).

- full fine-tuning solves rotate (token accuracy ≥ 0.95) and forgets reverse (retention < 0.5);
- LoRA (rank 4 on q and v) learns rotate above the untouched model on every seed, by > 0.3 on
  average (the cpu profile's 'by > 0.3 on every seed' fails on seed 1 here), and forgets as much;
- a P = 4 prefix at initialisation keeps the base model's accuracy on reverse (within 0.01).

Measured at cpu (300 steps of 128, 4,000 sequences; numbers in the lesson): full 1.00 on every seed,
LoRA 1.00 / 0.94 / 0.72. Measured here (seeds 0-2, make test-long on 2026-12-06; about 34 CPU-min, most
of it the gpu-budget base model, which every seed reuses): full 1.00 on every seed (retention 0.21),
LoRA 1.00 / 0.466 / 0.703 against the untouched model's 0.21, the P = 4 prefix at init 1.00 on reverse
like the base. Those runs predate adapt_model's seeding fix (the new parameters' start now comes from
the seed), which changes the LoRA runs' draws; not re-run since.
"""

import copy
import functools

import pytest
import torch

from attnflex_lab import adapt
from attnflex_lab.adapt.transfer import adapt_model, rotate_splits
from attnflex_lab.recipes.sequence import sequence_eval
from tests.learning import SEEDS, trained

pytestmark = [pytest.mark.long, pytest.mark.usefixtures("one_torch_thread")]


@functools.cache
def _base():
    _, run = trained("reverse", 0, profile_name="gpu")
    return run.model.cpu().eval(), run.extras["test"]


@functools.cache
def _adapted(method: str, seed: int):
    base, old = _base()
    new = rotate_splits("gpu", old.x.shape[1], seed=seed)
    cfg = adapt.LoRAConfig(rank=4) if method == "lora" else None
    result = adapt_model(base, method, new, old, profile="gpu", method_cfg=cfg, seed=seed)
    untouched = sequence_eval(base, new["test"].dataset())["token_accuracy"]
    print(method, seed, round(result.new_accuracy, 3), round(result.retention, 3), "untouched", round(untouched, 3))
    return result, untouched


@pytest.mark.parametrize("seed", SEEDS)
def test_full_finetuning_solves_rotate_and_forgets_reverse(seed):
    full, _ = _adapted("full", seed)
    assert full.new_accuracy >= 0.95 and full.retention < 0.5


def test_lora_learns_rotate_and_forgets_as_much():
    """Measured at this budget (before adapt_model seeded the new parameters itself, so not re-run
    since): LoRA 1.00 / 0.466 / 0.703 against the untouched model's 0.21, retention 0.21 / 0.12 / 0.22.
    Seed 1 fails the cpu profile's 'more than 0.3 above the untouched model on every seed', so the
    notebook asserts that in cpu only; here: above the untouched model on every seed, and by more than
    0.3 on average."""
    runs = [_adapted("lora", seed) for seed in SEEDS]
    for lora, untouched in runs:
        assert lora.new_accuracy > untouched and lora.retention < 0.5, (lora.new_accuracy, untouched, lora.retention)
    gain = sum(lora.new_accuracy - untouched for lora, untouched in runs) / len(runs)
    assert gain > 0.3, gain


def test_a_length_4_prefix_starts_with_the_base_models_accuracy():
    base, old = _base()
    prefixed = copy.deepcopy(base)
    adapt.add_prefix(prefixed, adapt.PrefixConfig(length=4))
    with torch.no_grad():
        before, after = (sequence_eval(m, old.dataset())["token_accuracy"] for m in (base, prefixed))
    print("reverse accuracy, base vs P = 4 prefix at init:", before, after)
    assert after >= before - 0.01
