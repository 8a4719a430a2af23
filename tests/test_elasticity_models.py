"""Setting A models, the setting B transformer and lesson 08's plots: shapes, contracts, clear errors."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.elasticity import plots as P
from attnflex_lab.elasticity.context import ContextConfig, ContextTransformer, trial_tokens
from attnflex_lab.elasticity.experiment import SwitchConfig, run_schedule
from attnflex_lab.elasticity.models import FAMILIES, build_model
from attnflex_lab.elasticity.tasks import diagnostic_batch, switch_batch, wcst_stream
from attnflex_lab.training import RecordAttention


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gives_logits_and_a_distribution_over_candidates(family):
    b = switch_batch(8, 1, 0, k=5, gen=torch.Generator().manual_seed(0))
    model = build_model(family, k=5)
    logits, weights = model(b.query, b.candidates, torch.full((8,), 1))
    assert logits.shape == weights.shape == (8, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(8))


def test_pointer_is_permutation_equivariant_over_candidates():
    # a set, not a sequence: shuffling the candidates shuffles the attention the same way
    b = switch_batch(6, 2, 1, gen=torch.Generator().manual_seed(1))
    model = build_model("pointer")
    perm = torch.tensor([2, 0, 3, 1])
    _, w = model(b.query, b.candidates)
    _, w_perm = model(b.query, b.candidates[:, perm])
    torch.testing.assert_close(w_perm, w[:, perm])


def test_shared_scorer_scores_each_candidate_alone():
    # the control for crediting attention: the pointer's sharing across candidates, no dot product
    b = switch_batch(6, 2, 1, gen=torch.Generator().manual_seed(1))
    model = build_model("shared_mlp")
    logits, _ = model(b.query, b.candidates)
    other = b.candidates.clone()
    other[:, 0] = (other[:, 0] + 1) % 4                          # change candidate 0 only
    logits_other, _ = model(b.query, other)
    torch.testing.assert_close(logits_other[:, 1:], logits[:, 1:])   # the others' scores do not move
    assert not torch.allclose(logits_other[:, 0], logits[:, 0])
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(model(b.query, b.candidates[:, perm])[0], logits[:, perm])


def test_model_bad_input():
    model = build_model("pointer_cued")
    b = switch_batch(4, 0, 1)
    with pytest.raises(ValueError, match="cued model needs rule"):
        model(b.query, b.candidates)
    with pytest.raises(ValueError, match="K=4"):
        model(b.query, b.candidates[:, :3], torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown model family"):
        build_model("lstm")


def test_run_schedule_calls_record_attention_and_checks_its_config():
    probe = diagnostic_batch(5, gen=torch.Generator().manual_seed(2))
    rec = RecordAttention(every=10, fn=lambda m: m(probe.query, probe.candidates)[1])
    cfg = SwitchConfig(schedule=(0, 1), max_phase_steps=30, hold_steps=0)
    run = run_schedule(cfg, callbacks=[rec])
    total = len(run.acc)
    expected = [0, *range(10, total + 1, 10)] + ([total] if total % 10 else [])
    assert rec.steps == expected, (rec.steps, total)
    assert rec.weights[0].shape == (5, 4)
    with pytest.raises(ValueError, match="consecutive phases"):
        SwitchConfig(schedule=(0, 0, 1))
    with pytest.raises(ValueError, match="at least two phases"):
        SwitchConfig(schedule=(0,))
    with pytest.raises(ValueError, match="replay needs a cued model"):
        SwitchConfig(family="pointer", replay=0.25)


def test_diagnostic_probe_has_one_candidate_per_rule():
    probe = diagnostic_batch(50, k=5, gen=torch.Generator().manual_seed(3))
    for r in range(3):
        match = probe.candidates[:, :, r] == probe.query[:, None, r]     # (B, K)
        assert torch.equal(match, probe.slot_rule == r)
    uniform = torch.full((50, 5), 0.2)
    torch.testing.assert_close(probe.mass_by_rule(uniform), torch.tensor([0.2, 0.2, 0.2, 0.4]))


def test_context_tokens_hide_the_current_answer():
    s = wcst_stream(3, 6, 0.2, gen=torch.Generator().manual_seed(4))
    tok = trial_tokens(s.cards, s.answers)
    assert tok.shape == (3, 6, 29)
    changed = s.answers.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 4                     # change only the last answer
    torch.testing.assert_close(trial_tokens(s.cards, changed), tok)  # token t never shows a_t


def test_context_transformer_is_causal():
    model = ContextTransformer(ContextConfig(length=8, d_model=16, n_heads=2))
    s = wcst_stream(2, 8, 0.2, gen=torch.Generator().manual_seed(5))
    tok = trial_tokens(s.cards, s.answers)
    later = tok.clone()
    later[:, 5:] = torch.rand_like(later[:, 5:])
    torch.testing.assert_close(model(later)[:, :5], model(tok)[:, :5])
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.zeros(1, 9, 29))


def test_context_gru_is_causal_and_the_arch_is_checked():
    from attnflex_lab.elasticity.context import ContextGRU, build_context_model

    torch.manual_seed(0)
    model = build_context_model(ContextConfig(length=8, d_model=16, arch="gru"))
    assert isinstance(model, ContextGRU)
    s = wcst_stream(2, 8, 0.2, gen=torch.Generator().manual_seed(5))
    tok = trial_tokens(s.cards, s.answers)
    later = tok.clone()
    later[:, 5:] = torch.rand_like(later[:, 5:])
    torch.testing.assert_close(model(later)[:, :5], model(tok)[:, :5])
    assert not torch.allclose(model(later)[:, 5:], model(tok)[:, 5:])
    with pytest.raises(ValueError, match="arch"):
        build_context_model(ContextConfig(arch="lstm"))
    with pytest.raises(ValueError, match=r"\(B, T, 29\)"):
        model(torch.zeros(1, 4, 28))


def test_plots_return_axes_with_the_data():
    acc = np.r_[np.ones(20), np.zeros(5), np.ones(20)]
    ax = P.plot_switch_curve(acc, [20], window=5, recovery_window=1)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), acc)
    w = np.full((3, 4), 0.25)
    ax = P.plot_candidate_attention(w, target=[0, 1, 2])
    np.testing.assert_array_equal(ax.images[0].get_array(), w)
    with pytest.raises(ValueError, match="one index per row"):
        P.plot_candidate_attention(w, target=[0, 1])
    fig, ax = plt.subplots()
    assert P.plot_context_curve([0, 1], [0.3, 0.8], [0.3, 0.9], ax=ax) is ax
    summary = {"a": {"switch_cost": {"mean": 0.5, "ci95": 0.1}}, "b": {"switch_cost": {"mean": 0.7, "ci95": None}}}
    ax = P.plot_family_comparison(summary, "switch_cost")
    assert [p.get_height() for p in ax.patches] == [0.5, 0.7]
    with pytest.raises(ValueError, match="not in the summary"):
        P.plot_family_comparison(summary, "savings")
