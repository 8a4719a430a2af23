"""Lesson 08's ID/ED claims, cpu profile, seeds 0-2 (steps to criterion after the shift, paired per seed).

What nb08 states and these check: with dimensional attention ED is slower than ID, the same MLP with
its attention held uniform shows no such cost and neither does the pointer, reversal is the slowest
shift for every family,
sharper attention (lower τ) raises the ED cost, and an entropy bonus or an attention reset lowers it.
"""

import numpy as np
import pytest

from attnflex_lab.elasticity.shift_runs import shift_config
from attnflex_lab.elasticity.shifts import run_shifts

pytestmark = pytest.mark.learning
SEEDS = (0, 1, 2)


def _steps(family, kinds=("ID", "ED", "reversal"), **kw):
    """{kind: (seeds,) steps to criterion}."""
    runs = [run_shifts(shift_config(family, s, "cpu", **kw), kinds=kinds) for s in SEEDS]
    return {k: np.array([r.shifts[k].steps for r in runs]) for k in kinds}   # inf: never reached


@pytest.fixture(scope="module")
def measured():
    return {"dimension": _steps("dimension"), "mlp": _steps("mlp"), "pointer": _steps("pointer"),
            "sharp": _steps("dimension", ("ID", "ED"), temperature=0.3),
            "sharp_entropy": _steps("dimension", ("ID", "ED"), temperature=0.3, entropy_bonus=0.2),
            "sharp_reset": _steps("dimension", ("ID", "ED"), temperature=0.3, reset_attention=True)}


def _ed_cost(s):
    return s["ED"] - s["ID"]     # (seeds,) paired


def test_every_shift_reaches_criterion(measured, one_torch_thread):
    for name, s in measured.items():
        for kind, steps in s.items():
            assert np.isfinite(steps).all(), f"{name} {kind}: criterion not reached {steps}"


def test_dimensional_attention_pays_an_ed_cost_the_mlp_control_does_not(measured, one_torch_thread):
    dim, mlp = _ed_cost(measured["dimension"]), _ed_cost(measured["mlp"])
    assert abs(mlp.mean()) < 5 < dim.mean() - mlp.mean(), f"ED − ID per seed: mlp {mlp}, dimension {dim}"
    pointer = _ed_cost(measured["pointer"])
    assert pointer.mean() < 5 < dim.mean() - pointer.mean(), f"ED − ID per seed: pointer {pointer}, dimension {dim}"


def test_reversal_is_the_slowest_shift(measured, one_torch_thread):
    for fam in ("dimension", "mlp", "pointer"):
        s = measured[fam]
        assert (s["reversal"] > np.maximum(s["ID"], s["ED"])).all(), f"{fam}: {s}"


def test_sharper_attention_raises_the_ed_cost_entropy_and_reset_lower_it(measured, one_torch_thread):
    plain, sharp = _ed_cost(measured["dimension"]), _ed_cost(measured["sharp"])
    entropy, reset = _ed_cost(measured["sharp_entropy"]), _ed_cost(measured["sharp_reset"])
    assert sharp.mean() > plain.mean() + 3, f"τ 0.3 {sharp} vs τ 1 {plain}"
    assert entropy.mean() < sharp.mean() - 2, f"entropy bonus {entropy} vs none {sharp}"
    assert abs(reset.mean()) < 5 < sharp.mean(), f"reset {reset} vs none {sharp}"
