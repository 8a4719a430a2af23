"""Learning checks (cpu profile) for lesson 04: the "dates" recipe's model (the notebook trains with
the recipe's settings) and the bottleneck experiment of step 7.

- exact match >= 0.99, exact alignment >= EXACT_TARGET with the offset histogram peaked at 0,
  alignment accuracy (argmax within ±1 of the true source character, where defined) >= 0.90, far
  above the untrained model's (steps 5 and 6);
- the trained model translates the widget's date ("Try it");
- dates in filler words (step 7): with attention, exact match >= 0.6 in every source-length bin;
  the same network reading only the last encoder states loses by >= LONG_GAP in every bin, on each
  of seeds 0, 1, 2 and in mean - sd over them.
"""

import pytest
import torch

from attnflex_lab.recipes.dates import alignment_offsets, century_weight_on_decade, dates_eval, new_model, translate
from attnflex_lab.tasks import dates as D
from tests.learning import SEED0_HERE_REST_LONG, SEEDS, trained

pytestmark = [pytest.mark.learning, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

EXACT_TARGET = 0.85  # lesson 04, step 6: exact alignment of the trained dates model (seed 0: 0.89)
LONG_GAP = 0.5   # attention minus last-state exact match, per length bin (lesson 04, step 7)


@pytest.mark.long  # 45-57 s, the slowest test of make test, which reached 10 min 12 s with it: make test-long-cpu
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


def test_the_century_is_read_from_the_decade_digits():
    """Lesson 04, step 6 (cpu, seed 0: 0.77 and 0.26): the century's first output character puts most
    of its weight on the two-digit year's digits, which uniform weights would give 2/n (about 0.25)."""
    _, run = trained("dates", 0)
    test = run.extras["data"].test
    _, alpha = translate(run.model.eval(), test.tensors[0])                    # (N, T, S)
    on_decade = century_weight_on_decade(alpha, run.extras["data"].examples["test"])   # (n, 2)
    print(f"century outputs' weight on the decade digits: {on_decade.mean(0).tolist()} over {len(on_decade)}")
    assert on_decade[:, 0].mean() >= 0.5, on_decade.mean(0)


def test_dates_model_translates_the_widget_date():
    _, run = trained("dates", 0)
    tokens, _ = translate(run.model.eval(), D.encode_sources(["Tuesday, March 3, 1987"]))   # (1, T)
    assert D.TARGET_VOCAB.decode(tokens[0]) == "1987-03-03"


# --- lesson 04, step 7: the bottleneck (dates in filler words, with and without attention) -------

def _long(name: str, seed: int) -> torch.Tensor:
    """Exact match per source-length bin (bins,) of a dates_long* recipe trained in cpu."""
    return torch.tensor(trained(name, seed)[0]["by_length"]["exact_match"])


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)  # 1, 2: make test-long
def test_dates_with_attention_reads_long_inputs(seed):
    """One training run per test: with attention, most dates are right in every length bin."""
    attention = _long("dates_long", seed)
    print(f"seed {seed}: attention, exact match per length bin {attention.tolist()}")
    assert (attention >= 0.6).all(), attention


@pytest.mark.parametrize("seed", SEED0_HERE_REST_LONG)  # 1, 2: make test-long
def test_dates_last_state_only_loses_to_attention(seed):
    """Same network, same budget, attention off: it loses by LONG_GAP or more in every bin."""
    attention, last_state = _long("dates_long", seed), _long("dates_long_noattn", seed)
    print(f"seed {seed}: attention {attention.tolist()}, last state {last_state.tolist()}")
    assert (attention - last_state >= LONG_GAP).all(), (attention, last_state)


@pytest.mark.long  # all three seeds: make test-long
def test_dates_bottleneck_over_three_seeds():
    """Lesson 04, step 7: the mean ± sd it prints, over seeds 0, 1, 2 (reusing the runs above)."""
    gaps = torch.stack([_long("dates_long", s) - _long("dates_long_noattn", s) for s in SEEDS])
    print(f"gap per bin: mean {gaps.mean(0).tolist()}, sd {gaps.std(0).tolist()}")
    assert (gaps.mean(0) - gaps.std(0) >= LONG_GAP).all(), gaps
