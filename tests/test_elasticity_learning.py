"""Setting A targets in the cpu profile, seeds 0-2 (the numbers lesson 08 and the benchmark quote).

Every family must reach the criterion (running accuracy ≥ 0.95) on every rule of A → B → C → A and
score ≥ 0.95 on that rule's held-out probe before the switch; the attention pointers must put ≥ 0.9
of their attention on the target once they have recovered.
"""

import pytest

from attnflex_lab.elasticity.experiment import run_schedule
from attnflex_lab.elasticity.models import FAMILIES
from attnflex_lab.elasticity.switching import weights_config

pytestmark = pytest.mark.learning


@pytest.mark.parametrize("family", FAMILIES)
def test_setting_a_targets(family):
    for seed in (0, 1, 2):
        run = run_schedule(weights_config(family, seed, "cpu"))
        assert all(run.reached), f"{family} seed {seed}: criterion not reached in phases {run.reached}"
        assert min(run.probe_acc) >= 0.95, f"{family} seed {seed}: probe accuracy per rule {run.probe_acc}"
        if family.startswith("pointer"):
            assert min(run.probe_on_target) >= 0.9, \
                f"{family} seed {seed}: attention on target per phase {run.probe_on_target}"
        # the switch is real: accuracy collapses right after each uncued switch
        if family != "pointer_cued":
            assert all(s["switch_cost"] > 0.5 for s in run.switches), run.switches
