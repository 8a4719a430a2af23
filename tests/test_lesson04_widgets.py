"""Lesson 04's snapshot slider prints what the learner predicted: the weight on the true character."""

import numpy as np
import pytest
import torch

from attnflex_lab.viz import alignment_snapshots
from attnflex_lab.viz.alignment import snapshot_readout
from tests.widgets import find_widget


def test_the_readout_follows_the_slider(capsys):
    uniform = torch.full((3, 5), 0.2)                                      # step 0: 1/n everywhere
    aligned = torch.tensor([[0.9, 0.05, 0.05, 0.0, 0.0],
                            [0.2, 0.2, 0.2, 0.2, 0.2],
                            [0.0, 0.1, 0.0, 0.2, 0.7]])
    truth = torch.tensor([0, -1, 3])                                        # row 1 copies nothing
    box = alignment_snapshots([uniform, uniform, aligned], [0, 10, 20], list("abcde"), list("xyz"),
                              true_positions=truth)
    assert "0.200 on average (uniform: 1/5 = 0.200)" in capsys.readouterr().out   # drawn when built
    find_widget(box, "snapshot").value = 2
    out = capsys.readouterr().out
    assert f"{np.mean([0.9, 0.2]):.3f} on average" in out and "exactly there in 1 of 2 rows" in out


def test_the_readout_refuses_a_map_without_a_copied_character():
    with pytest.raises(ValueError, match="at least one >= 0"):
        snapshot_readout(torch.full((2, 3), 1 / 3), torch.tensor([-1, -1]), 3)
