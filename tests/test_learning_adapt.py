"""Learning checks (cpu profile) for lesson 10: adapting the reverse encoder to rotate.

Measured with seed 0 (the numbers the notebook reports in cpu):

- LoRA (rank 4, on q and v, 2 % of the parameters) reaches full fine-tuning's token accuracy on the
  new task (both 1.0), within 0.02;
- at the same step budget bottleneck adapters and the K/V prefix were measured far below it (≈ 0.33–0.36,
  seed 0; adapters were still improving at 1,500 steps, 0.355 -> 0.49), so this file checks only
  their parameter budgets, never that a method must fail or stay still (their attention shifts are
  printed, not asserted); LoRA, inside the q and v projections, moves the attention a lot;
- full fine-tuning forgets the old task (retention ≈ 0.33), the frozen-base methods that learnt
  nothing new forget less;
- multi-task with a task token: the shared model lags the separate ones (negative transfer);
- a prefix (P = 16, ``sweeps.SHIFTED_REVERSE_PREFIX``) learns shifted reverse, where the base model's
  route is right and only the output digits change: 1.00 on seeds 0-2 at 300 steps (long tier).
"""

import functools

import pytest

from attnflex_lab import adapt
from attnflex_lab.adapt.multitask import run_multitask
from attnflex_lab.adapt.sweeps import SHIFTED_REVERSE_PREFIX, shifted_reverse_splits
from attnflex_lab.adapt.transfer import adapt_model, attention_maps, attention_shift_by_head, rotate_splits

from .learning import SEEDS, trained

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@functools.cache
def _adapted(method: str):
    _, run = trained("reverse", 0)
    cfg = adapt.LoRAConfig(rank=4) if method == "lora" else None
    return adapt_model(run.model, method, rotate_splits("cpu", run.extras["test"].x.shape[1]),
                       run.extras["test"], profile="cpu", method_cfg=cfg, seed=0)


def test_lora_rank_4_matches_full_finetuning_with_few_parameters():
    full, lora = _adapted("full"), _adapted("lora")
    print({r.method: (r.trainable, round(r.new_accuracy, 3), round(r.retention, 3)) for r in (full, lora)})
    assert full.new_accuracy >= 0.95, "full fine-tuning must work for the comparison to mean anything"
    assert lora.trainable <= 0.05 * full.trainable
    assert lora.new_accuracy >= full.new_accuracy - 0.02
    assert full.retention < 0.5 and lora.retention < 0.5  # the adapted models no longer reverse


def test_adapters_prefix_and_probe_use_few_parameters_and_lora_moves_the_attention():
    lora = _adapted("lora")
    for method in ("adapter", "prefix", "linear_probe"):
        result = _adapted(method)
        print(method, result.trainable, round(result.new_accuracy, 3), round(result.retention, 3))
        assert result.trainable <= 0.05 * lora.total
        assert 0.0 <= result.new_accuracy <= 1.0 and 0.0 <= result.retention <= 1.0
    # LoRA, inside the q and v projections, moves both layers (≈ 0.53 bits measured); the adapters'
    # shift (≈ 0.003 bits at this budget, seed 0) is printed only: a budget's snapshot, not a law
    _, run = trained("reverse", 0)
    x = rotate_splits("cpu", run.extras["test"].x.shape[1])["test"].x[:256]
    before = attention_maps(run.model, x)
    shift = {m: attention_shift_by_head(before, attention_maps(_adapted(m).model, x)).mean()
             for m in ("adapter", "lora")}
    print(shift)
    assert shift["lora"] > 0.3


@pytest.mark.long   # 16 s of a 2-core make test; make test-long checks it
def test_a_shared_model_with_a_task_token_lags_separate_models_at_equal_examples():
    """Negative transfer on reverse + rotate (measured, seed 0: separate 1.0 and 1.0, shared ≈ 0.68
    and 0.65 after twice the steps, so each task sees as many examples): the shared model has to
    learn to read the task token before it can route, and at this budget it has not finished."""
    result = run_multitask("cpu", ("reverse", "rotate"), seed=0)
    print(result.separate, result.multi, result.negative_transfer)
    assert min(result.separate.values()) >= 0.95
    assert min(result.negative_transfer.values()) > 0.1


@pytest.mark.long   # ~10 s a seed on one free core; lesson 10 asserts it in cpu over SEEDS
@pytest.mark.parametrize("seed", SEEDS)
def test_a_prefix_learns_shifted_reverse_where_the_base_model_routes_right(seed):
    """Lesson 10's task a prefix can learn (measured at 300 steps: 1.00 on seeds 0, 1 and 2; with
    the old learning rate 3e-2 and P = 10 it stayed at 0.13-0.15)."""
    _, run = trained("reverse", 0)
    old = run.extras["test"]
    new = shifted_reverse_splits("cpu", old.x.shape[1], seed=seed)
    result = adapt_model(run.model, "prefix", new, old, profile="cpu", method_cfg=SHIFTED_REVERSE_PREFIX, seed=seed)
    print(seed, result.trainable, round(result.new_accuracy, 3), round(result.retention, 3))
    assert result.trainable <= 0.05 * result.total
    assert result.new_accuracy >= 0.9
