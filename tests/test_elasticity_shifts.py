"""ID/ED/reversal shifts: the task, the models and the criterion on known answers."""

import math

import numpy as np
import pytest
import torch

from attnflex_lab.elasticity.shift_runs import mean_interval, run_shift_experiment, sweep_ed_cost
from attnflex_lab.elasticity.shifts import (
    CardMLP,
    DimensionAttention,
    ShiftConfig,
    make_stages,
    run_shifts,
    shift_batch,
    steps_to_criterion,
)


def test_stages_new_exemplars_and_the_relevant_dimension():
    st = make_stages(ShiftConfig(seed=3))
    old, new = st["acquisition"].pairs, st["ID"].pairs                       # (D, 2) each
    assert all(set(old[d].tolist()).isdisjoint(new[d].tolist()) for d in range(3)), "ID/ED show new exemplars"
    assert torch.equal(st["ED"].pairs, new) and torch.equal(st["reversal"].pairs, old)
    assert (st["acquisition"].dim, st["ID"].dim, st["ED"].dim, st["reversal"].dim) == (0, 0, 1, 0)
    assert st["reversal"].value == int(old[0, 1]) != st["acquisition"].value
    assert st["ED"].value in new[1].tolist() and st["ID"].value in new[0].tolist()


def test_shift_batch_only_the_relevant_dimension_predicts_the_target():
    stage = make_stages(ShiftConfig(seed=1))["ED"]
    cards, target = shift_batch(stage, 4000, torch.Generator().manual_seed(0))   # (n, 2, D), (n,)
    rows = torch.arange(len(target))
    assert (cards[rows, target, stage.dim] == stage.value).all(), "the target carries the rewarded value"
    assert (cards[rows, 1 - target, stage.dim] != stage.value).all()
    assert (cards[:, 0] != cards[:, 1]).all(), "the two cards differ on every dimension"
    for d in (0, 2):   # an irrelevant dimension's value on the target is a coin flip
        share = (cards[rows, target, d] == stage.pairs[d, 0]).float().mean()
        assert abs(share - 0.5) < 0.04, f"dimension {d} predicts the target: {share:.3f}"


def test_steps_to_criterion_known_answers():
    p = [0.0] * 10 + [1.0] * 30
    assert steps_to_criterion(p, 0.9, 20) == 28        # first 20-window with >= 18 ones ends at step 28
    assert steps_to_criterion([1.0] * 20, 0.9, 20) == 20
    assert steps_to_criterion([0.89] * 50, 0.9, 20) == math.inf
    assert steps_to_criterion([1.0] * 19, 0.9, 20) == math.inf
    with pytest.raises(ValueError, match="1-D"):
        steps_to_criterion(np.zeros((2, 20)), 0.9, 20)


def test_uniform_attention_is_exactly_the_mlp_control():
    cfg = ShiftConfig(temperature=0.5)
    torch.manual_seed(0)
    gated = DimensionAttention(cfg)
    mlp = CardMLP(cfg)
    mlp.load_state_dict({k: v for k, v in gated.state_dict().items() if k != "gate"})
    cards = torch.randint(0, 8, (5, 2, 3))
    torch.testing.assert_close(gated(cards), mlp(cards))              # g = 0: the gate is the identity
    with torch.no_grad():
        gated.gate.copy_(torch.tensor([1.0, 0.0, -1.0]))
    alpha = torch.softmax(torch.tensor([2.0, 0.0, -2.0]), -1)           # softmax(g / τ), τ = 0.5
    torch.testing.assert_close(gated.attention(), alpha)
    x = torch.nn.functional.one_hot(cards, 8).float() * (3 * alpha)[:, None]   # (5, 2, 3, 8)
    torch.testing.assert_close(gated(cards), mlp.net(x.flatten(-2)).squeeze(-1))


def test_bad_configs_name_what_is_wrong():
    with pytest.raises(ValueError, match="has none"):
        ShiftConfig(family="mlp", temperature=0.5)
    with pytest.raises(ValueError, match="unknown shift family"):
        ShiftConfig(family="gru")
    with pytest.raises(ValueError, match="new exemplars"):
        ShiftConfig(n_values=3)
    with pytest.raises(ValueError, match="unknown shift kinds"):
        run_shifts(ShiftConfig(max_steps=20), kinds=("EDS",))
    with pytest.raises(ValueError, match="not a ShiftConfig field"):
        sweep_ed_cost("tau", [1.0], [0])


def test_shifts_start_from_one_trained_state_and_the_reset_makes_attention_uniform():
    cfg = ShiftConfig(temperature=0.3, reset_attention=True, max_steps=40, overtrain=20)
    run = run_shifts(cfg, kinds=("ID", "ED"))
    acq_alpha = run.acquisition.attention[-1]
    assert acq_alpha[0] > 0.5, f"acquisition should have moved attention to dimension 0: {acq_alpha}"
    for kind in ("ID", "ED"):
        np.testing.assert_allclose(run.shifts[kind].attention[0], np.full(3, 1 / 3), atol=1e-6)
    plain = run_shifts(ShiftConfig(temperature=0.3, max_steps=40, overtrain=20), kinds=("ID", "ED"))
    for kind in ("ID", "ED"):   # without the reset every shift starts from the acquired attention
        np.testing.assert_allclose(plain.shifts[kind].attention[0], plain.acquisition.attention[-1], rtol=0.05)


def test_mean_interval_and_the_experiment_summary_shape():
    assert mean_interval([10.0, 12.0, 14.0]) == {"mean": 12.0, "ci": [7.03, 16.97]}   # 12 ± 4.303·2/√3
    assert mean_interval([5.0])["ci"] is None
    summary, runs = run_shift_experiment(("dimension", "mlp"), seeds=2, profile_name="smoke", max_steps=30)
    assert summary["setting"] == "shifts" and set(summary["results"]) == {"dimension", "mlp"} and len(runs) == 4
    for fam in summary["results"].values():
        assert set(fam) == {"ID", "ED", "reversal"}
        for cell in fam.values():
            assert set(cell) == {"mean", "ci"} and cell["ci"][0] <= cell["mean"] <= cell["ci"][1]


def test_shift_plots_draw_the_numbers_they_are_given():
    from attnflex_lab.elasticity import plots as P

    results = {"dimension": {"ID": {"mean": 30.0, "ci": [25.0, 35.0]}, "ED": {"mean": 40.0, "ci": [38.0, 42.0]},
                             "reversal": {"mean": 90.0, "ci": None}},
               "mlp": {"ID": {"mean": 33.0, "ci": [30.0, 36.0]}, "ED": {"mean": 32.0, "ci": [31.0, 33.0]},
                       "reversal": {"mean": 80.0, "ci": [70.0, 90.0]}}}
    ax = P.plot_shift_results(results)
    heights = [[bar.get_height() for bar in container] for container in ax.containers if hasattr(container, "patches")]
    assert heights == [[30.0, 33.0], [40.0, 32.0], [90.0, 80.0]]            # ID, ED, reversal over families
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ID", "ED", "reversal"]
    cell = {"ID": np.linspace(0.5, 1, 5), "ED": np.linspace(0.4, 1, 7), "steps_ID": 4.0, "steps_ED": 6.0}
    ax = P.plot_shift_curves(cell)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), cell["ID"])
    np.testing.assert_allclose(ax.lines[2].get_ydata(), cell["ED"])      # line 1 marks ID's step to criterion
    assert ax.lines[1].get_xdata()[0] == 4.0 and ax.lines[3].get_xdata()[0] == 6.0   # each kind its own mark
