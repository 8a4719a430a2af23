"""attnflex_lab.viz.sdpa: the SDPA sweep (memory via attnflex_lab.kernels.memory), its plot and its widget.

Memory is asserted (deterministic on CPU: the bytes ops return), time never is.
Planted bugs each test caught: the backend ignored inside the sweep (flash rows measured the math
kernel, so they held T×T); the widget's redraw ignoring the measure (still plotting memory); lesson
06's sweep cell asserting on a math row that ran out of memory.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend

import attnflex_lab as afl
import attnflex_lab.viz.sdpa as sdpa
from attnflex_lab.viz.sdpa import explore_sdpa_sweep, plot_sdpa_sweep, sdpa_sweep
from tests.widgets import find_widget

B, H, D, TS = 1, 2, 16, [32, 64, 128]


@pytest.fixture(scope="module")
def rows():
    return sdpa_sweep(TS, batch=B, heads=H, head_dim=D, repeats=1,
                      backends=(SDPBackend.MATH, SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION))


def test_math_holds_the_score_matrix_and_flash_does_not(rows):
    by = {(r.backend, r.seq_len): r for r in rows}
    assert {r.backend for r in rows} == {"MATH", "FLASH_ATTENTION"}    # cuDNN raises on CPU: skipped
    for t in TS:
        scores = B * H * t * t * 4                                       # one float32 (T, T) per head
        assert by["MATH", t].peak_bytes >= scores
        assert by["FLASH_ATTENTION", t].peak_bytes < by["MATH", t].peak_bytes
        assert by["MATH", t].seconds > 0
    assert by["FLASH_ATTENTION", 128].peak_bytes < B * H * 128 * 128 * 4
    # flash: memory linear in T (doubling T doubles it); math: quadratic terms take over
    assert by["FLASH_ATTENTION", 128].peak_bytes == 2 * by["FLASH_ATTENTION", 64].peak_bytes
    assert by["MATH", 128].peak_bytes > 3 * by["MATH", 64].peak_bytes


def test_plot_draws_one_line_per_backend_with_the_measured_values(rows):
    ax = plot_sdpa_sweep(rows, measure="forward + backward (ms)", log_axes=False)
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"math", "flash_attention"}
    math_rows = [r for r in rows if r.backend == "MATH"]
    np.testing.assert_array_equal(lines["math"].get_xdata(), TS)
    np.testing.assert_allclose(lines["math"].get_ydata(), [r.ms for r in math_rows])
    assert ax.get_xscale() == "linear" and "ms" in ax.get_ylabel()


def test_widget_redraws_when_the_measure_changes(rows):
    box = explore_sdpa_sweep(rows)
    menu = find_widget(box, "measure")
    assert menu is not None and find_widget(box, "log axes") is not None
    first = plt.get_fignums()[-1]
    peaks = plt.figure(first).axes[0].lines[0].get_ydata()
    assert plt.figure(first).axes[0].get_yscale() == "log"
    np.testing.assert_allclose(sorted(peaks), sorted(r.peak_mib for r in rows if r.backend == "FLASH_ATTENTION"))
    menu.value = "forward + backward (ms)"
    latest = plt.get_fignums()[-1]
    assert latest != first
    ax = plt.figure(latest).axes[0]
    assert "ms" in ax.get_ylabel()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [r.ms for r in rows if r.backend == "FLASH_ATTENTION"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="seq_lens"):
        sdpa_sweep([0, 8])
    with pytest.raises(ValueError, match="measure must be one of"):
        plot_sdpa_sweep([], measure="energy")
    with pytest.raises(ValueError, match="at least one"):
        explore_sdpa_sweep([])


def test_lesson06_sweep_cell_holds_when_math_runs_out_of_memory(monkeypatch):
    """In the gpu profile a 15 GB GPU can run out of memory in the math kernel at T = 8192: the sweep
    keeps that row (out_of_memory, no bytes). Planted bug, the cell before this fix: it asserted on
    every length's math row and failed on that one (0 bytes), then would have failed with a KeyError."""
    measured = sdpa.sdpa_sweep

    def math_out_of_memory_at_the_longest(seq_lens, **kwargs):
        rows = measured(seq_lens, **kwargs)
        return [sdpa.SweepRow("MATH", r.seq_len, 0, float("nan"), out_of_memory=True)
                if (r.backend, r.seq_len) == ("MATH", seq_lens[-1]) else r for r in rows]

    monkeypatch.setattr(sdpa, "sdpa_sweep", math_out_of_memory_at_the_longest)
    monkeypatch.setenv("ATTNFLEX_PROFILE", "smoke")
    cells = json.loads((Path(__file__).parents[1] / "notebooks/06_training_on_a_gpu.ipynb").read_text())["cells"]
    (source,) = ["".join(c["source"]) for c in cells if c.get("id") == "06-i11-08"]
    namespace = dict(afl=afl, torch=torch, plt=plt, dtype=torch.float32, device=torch.device("cpu"))
    exec(source, namespace)
    assert namespace["t_max"] == namespace["sweep_lens"][-2]     # the longest length math ran at
    plt.close("all")
