"""Lesson 10 at the gpu profile's budget (make test-long; not in CI): the claims the notebook asserts
in cpu and gpu, over seeds 0-2, with the gpu profile's rotate data (20,000 training sequences) and
fine-tuning budget (1,000 steps of 256).

- full fine-tuning solves rotate (token accuracy ≥ 0.95) and forgets reverse (retention < 0.5);
- LoRA (rank 4 on q and v) learns rotate more than 0.3 above the untouched model on every seed, and
  forgets as much;
- the base model reverses exactly (exact match >= 0.99), and the multi-task models beat chance;
- a P = 4 prefix at initialisation keeps the base model's accuracy on reverse (within 0.01).

Measured at cpu (300 steps of 128, 4,000 sequences; numbers in the lesson): full 1.00 on every seed,
LoRA 1.00 / 0.94 / 0.72. Measured here (seeds 0-2, make test-long on 2026-12-06, 32 CPU-min, the
gpu-budget base model about a third of it): full 1.00 on every seed (retention 0.211), LoRA 0.631 /
1.000 / 1.000 against the untouched model's 0.213 / 0.218 / 0.209, the P = 4 prefix at init as
accurate on reverse as the base. Added after that run and run on their own (same day): the base model's
exact match 1.00; the multi-task models at seed 0 all 1.00 (separate and shared, both tasks: no negative
transfer at this budget), 620 s on a shared core (about 330 CPU-s).
"""

import copy
import functools

import pytest
import torch

from attnflex_lab import adapt
from attnflex_lab.adapt.multitask import run_multitask
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


def test_the_base_model_reverses_exactly():
    """Cell 10-006 in gpu: the gpu-budget reverse encoder, which every adaptation starts from, gets
    exact match >= 0.99 on its held-out reverse sequences."""
    base, old = _base()
    scores = sequence_eval(base, old.dataset())
    print("base model on reverse:", scores)
    assert scores["exact_match"] >= 0.99, scores


def test_separate_and_shared_models_both_learn_beyond_chance():
    """Cell 10-010 in gpu, seed 0 as the notebook runs it: at the gpu budget (length 16, 1,500 steps per
    task) the separate models and the shared task-token model all score token accuracy > 0.1 (chance)
    on both tasks. Only that: the size of the negative transfer is measured in cpu
    (tests/test_learning_adapt.py), not here."""
    mt = run_multitask("gpu", ("reverse", "rotate"), seed=0)
    print("separate", mt.separate, "shared", mt.multi)
    assert all(min(mt.separate[name], mt.multi[name]) > 0.1 for name in mt.separate), (mt.separate, mt.multi)


@pytest.mark.parametrize("seed", SEEDS)
def test_full_finetuning_solves_rotate_and_forgets_reverse(seed):
    full, _ = _adapted("full", seed)
    assert full.new_accuracy >= 0.95 and full.retention < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_lora_learns_rotate_and_forgets_as_much(seed):
    """LoRA beats the untouched model by more than 0.3 on every seed and forgets reverse, as in cpu.
    Measured (make test-long, 2026-12-06): 0.631 / 1.000 / 1.000 against the untouched model's 0.213 /
    0.218 / 0.209, retention 0.219 / 0.211 / 0.211. (Before adapt_model seeded the new parameters from
    the seed, one run got 0.466 on seed 1.)"""
    lora, untouched = _adapted("lora", seed)
    assert lora.new_accuracy > untouched + 0.3 and lora.retention < 0.5, (lora.new_accuracy, untouched, lora.retention)


def test_a_length_4_prefix_starts_with_the_base_models_accuracy():
    base, old = _base()
    prefixed = copy.deepcopy(base)
    adapt.add_prefix(prefixed, adapt.PrefixConfig(length=4))
    with torch.no_grad():
        before, after = (sequence_eval(m, old.dataset())["token_accuracy"] for m in (base, prefixed))
    print("reverse accuracy, base vs P = 4 prefix at init:", before, after)
    assert after >= before - 0.01
