"""Serial-switch schedules: the schedule and the first/last summary on known answers; the learning-to-
switch claims of lesson 08 at the cpu profile's size (marker ``long``: ~2 min of training on one core)."""

import numpy as np
import pytest

from attnflex_lab.elasticity.serial import run_serial, serial_schedule, summarise_serial


def test_serial_schedule_switches_every_phase():
    assert serial_schedule(4) == (0, 1, 2, 0, 1)
    assert len(serial_schedule(12)) == 13
    with pytest.raises(ValueError, match="positive int"):
        serial_schedule(0)


def test_summarise_serial_first_and_last_switches():
    curves = {"recovery_steps": np.array([[10.0, 8, 6, 4, 2], [12, 10, 8, 6, 4]])}   # (seeds, switches)
    s = summarise_serial(curves, first=2)["recovery_steps"]
    assert s["first"][0] == pytest.approx(10.0) and s["last"][0] == pytest.approx(4.0)   # (9+11)/2, (3+5)/2
    assert s["first"][1] == pytest.approx(12.706, rel=1e-3)        # t_1 · s/√n with s = √2, n = 2


@pytest.mark.long
def test_learning_to_switch_over_12_switches(one_torch_thread):
    pointer, _ = run_serial("pointer", (0, 1, 2), 12, "cpu")
    rec = pointer["recovery_steps"].mean(0)                               # (switches,)
    assert rec[-3:].mean() < 0.75 * rec[:3].mean(), f"uncued recovery by switch {rec}"
    assert pointer["retention"].max() < 0.1, "uncued, the old rule cannot be kept"
    cued, _ = run_serial("pointer_cued", (0, 1, 2), 12, "cpu")
    assert cued["retention"][:, -3:].mean() > 0.9, cued["retention"].mean(0)
    assert cued["recovery_steps"][:, -3:].mean() < 10, cued["recovery_steps"].mean(0)
