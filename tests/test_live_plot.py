"""The live loss plot: one display updated in place, throttled by steps and time, one figure, no leak."""

import gc
import io
import sys
import types
import weakref

import matplotlib.figure
import matplotlib.image
import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from attnflex_lab.training import LiveCurve, LivePlot, TrainConfig, fit
from attnflex_lab.training import live_plot as live_plot_module
from attnflex_lab.training.live_plot import in_jupyter_kernel


class FakeDisplay:
    """Stands in for IPython's display(obj, display_id=True): counts shows and in-place updates."""

    def __init__(self):
        self.shown, self.updates = [], []

    def __call__(self, obj):
        self.shown.append(obj)
        return self

    def update(self, obj):
        self.updates.append(obj)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Tick:
    """A callback placed before the plot: every step takes ``seconds`` on the fake clock."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds = clock, seconds

    def on_step_end(self, state):
        self.clock.now += self.seconds


def _data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=gen)  # (N, 4)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _fit(steps, callbacks=(), **cfg):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    cfg = TrainConfig(**{"steps": steps, "batch_size": 16, "lr": 1e-2, "progress": False, **cfg})
    return fit(model, _data(), None, cfg, loss_fn=_loss, callbacks=callbacks)


def _plot(clock, display, **kw):
    return LivePlot(display=display, image=lambda png: png, clock=clock, **kw)


def test_redraws_every_n_steps_in_one_display_and_leaves_a_final_figure():
    clock, display, drawn = Clock(), FakeDisplay(), []

    def keep_drawn_data(png):  # what the figure holds when each PNG is made
        drawn.append({line.get_label(): line.get_data() for line in plot.curve.axes.lines})
        return png

    plot = LivePlot(display=display, image=keep_drawn_data, clock=clock, every=5, min_seconds=0.5)
    history = _fit(40, [Tick(clock, 0.125), plot])  # 5 steps take 0.625 s: the step count decides
    assert [len(d["train loss"][0]) for d in drawn] == [5, 10, 15, 20, 25, 30, 35, 40, 40]
    steps, losses = drawn[-1]["train loss"]
    assert (list(steps), list(losses)) == history.values("loss")  # the final figure: the whole run
    assert len(display.shown) == 1                 # one output, shown once ...
    assert len(display.updates) == 8               # ... then updated at steps 10, 15, ..., 40 and at the end
    assert plot.draws == 9
    final = matplotlib.image.imread(io.BytesIO(display.updates[-1]), format="png")
    assert final.shape[:2] == (192, 400)           # a real PNG of figsize (5, 2.4) at 80 dpi
    assert display.updates[-1] != display.shown[0]  # the curve grew between the first and last drawing


def test_time_limits_redraws_when_steps_are_fast():
    clock, display = Clock(), FakeDisplay()
    plot = _plot(clock, display, every=1, min_seconds=0.5)
    _fit(100, [Tick(clock, 1 / 64), plot])  # 32 steps per 0.5 s: draws at 32, 64, 96, then the end
    assert plot.draws == 4 and len(display.shown) == 1 and len(display.updates) == 3


@pytest.fixture
def figures_made(monkeypatch):
    """(weak refs to every matplotlib Figure made in the test, pyplot's figure numbers before it)."""
    made = []

    class CountedFigure(matplotlib.figure.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    monkeypatch.setattr(matplotlib.figure, "Figure", CountedFigure)
    return made, plt.get_fignums()


def test_one_figure_per_run_none_left_open(figures_made):
    made, open_before = figures_made
    clock, display = Clock(), FakeDisplay()
    plot = _plot(clock, display, every=4, min_seconds=0.0)
    overhead = []
    on_fit_end = types.SimpleNamespace(on_fit_end=lambda state: overhead.append(state.overhead_seconds))
    _fit(20, [Tick(clock, 0.1), on_fit_end, plot])
    assert overhead[0] > 0                          # the 5 mid-run drawings count as overhead, not training
    assert plot.draws == 6 and len(made) == 1       # 6 drawings, one figure redrawn in place
    assert plt.get_fignums() == open_before         # pyplot never saw it
    gc.collect()
    assert made[0]() is None                        # and nothing holds it after the run


def test_fit_adds_the_plot_when_asked_and_only_then(monkeypatch):
    display = FakeDisplay()
    monkeypatch.setattr(live_plot_module, "_ipython_display", display)
    monkeypatch.setattr(live_plot_module, "_png", lambda png: png)
    _fit(10)                                        # auto, outside a kernel (pytest): off
    _fit(10, live_plot=False)
    assert display.shown == [] and not in_jupyter_kernel()
    _fit(10, live_plot=True)                        # forced on: at least the final figure
    assert len(display.shown) == 1 and display.shown[0].startswith(b"\x89PNG")
    monkeypatch.setattr(live_plot_module, "in_jupyter_kernel", lambda: True)
    _fit(10, progress=True)                         # auto inside a kernel: on, with the bar ...
    _fit(10, progress=False)                        # ... and without it (a loop over seeds)
    _fit(10, live_plot=False)                       # unless switched off
    assert len(display.shown) == 3


def test_in_jupyter_kernel_asks_the_running_shell(monkeypatch):
    def fake_ipython(shell):
        return types.SimpleNamespace(get_ipython=lambda: shell)

    monkeypatch.setitem(sys.modules, "IPython", fake_ipython(None))
    assert not in_jupyter_kernel()
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython(types.SimpleNamespace()))  # a terminal
    assert not in_jupyter_kernel()
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython(types.SimpleNamespace(kernel=object())))
    assert in_jupyter_kernel()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="live_plot must be None"):
        TrainConfig(live_plot="yes")
    with pytest.raises(ValueError, match="every must be a positive int"):
        LivePlot(every=0)
    with pytest.raises(ValueError, match="min_seconds"):
        LivePlot(min_seconds=-1)
    with pytest.raises(ValueError, match="enabled must be None"):
        LiveCurve(enabled="yes")


def test_a_slow_drawing_spaces_the_redraws_out():
    clock, display = Clock(), FakeDisplay()

    def slow_png(png):  # each drawing costs 0.2 s: redraws then wait 10 x 0.2 s, not min_seconds
        clock.now += 0.2
        return png

    plot = LivePlot(display=display, image=slow_png, clock=clock, every=1, min_seconds=0.5)
    _fit(40, [Tick(clock, 0.125), plot])  # draws at steps 4, 20 and 36, then the final one
    assert plot.draws == 4 and len(display.updates) == 3


def _curve(clock, display, **kw):
    return LiveCurve(display=display, image=lambda png: png, clock=clock, enabled=True, **kw)


def test_a_live_curve_of_any_loop_redraws_in_one_display_and_ends_static(figures_made):
    made, open_before = figures_made
    clock, display = Clock(), FakeDisplay()
    curve = _curve(clock, display, every=4, min_seconds=0.5, total_steps=30)
    spent = []
    for step in range(1, 31):                        # a hand-written loop: 0.25 s a step
        clock.now += 0.25
        spent.append(curve.update(step, loss=1 / step, fp16=2 / step))
    assert [i + 1 for i, s in enumerate(spent) if s > 0] == [4, 8, 12, 16, 20, 24, 28]
    assert curve.series["loss"] == (list(range(1, 31)), [1 / s for s in range(1, 31)])
    assert curve.close() > 0                         # the final drawing: the whole run
    assert [line.get_label() for line in made[0]().axes[0].lines] == ["loss", "fp16"]
    assert list(made[0]().axes[0].lines[1].get_xdata()) == list(range(1, 31))
    assert len(display.shown) == 1 and len(display.updates) == 7 and curve.draws == 8
    final = matplotlib.image.imread(io.BytesIO(display.updates[-1]), format="png")
    assert final.shape[:2] == (192, 400)
    assert curve.close() == 0.0 and curve.draws == 8  # closing twice draws nothing more
    assert len(made) == 1 and plt.get_fignums() == open_before
    gc.collect()
    assert made[0]() is None                         # the figure is let go after close()


def test_a_loop_over_runs_keeps_one_figure_showing_the_current_run():
    clock, display = Clock(), FakeDisplay()
    with _curve(clock, display, every=5, min_seconds=0.0) as curve:
        for seed in range(3):
            curve.start(title=f"seed {seed}", total_steps=10)
            for step in range(1, 11):
                clock.now += 0.1
                curve.update(step, loss=seed + 1 / step)
    assert len(display.shown) == 1                   # one output for the three runs
    assert curve.draws == 3 * 2 + 1 and len(display.updates) == 6
    assert curve.series["loss"][1] == [2 + 1 / s for s in range(1, 11)]  # only the current (last) run
    assert curve.title == "seed 2" and curve.axes is None  # closed on leaving the block


def test_a_live_curve_is_a_no_op_outside_a_kernel(monkeypatch):
    display = FakeDisplay()
    monkeypatch.setattr(live_plot_module, "_ipython_display", display)
    monkeypatch.setattr(live_plot_module, "_png", lambda png: png)
    quiet = LiveCurve(every=1, min_seconds=0.0)      # auto, in pytest: off
    for step in range(1, 6):
        assert quiet.update(step, loss=1.0) == 0.0
    quiet.start(title="x")
    assert quiet.close() == 0.0
    assert not quiet.enabled and quiet.series == {} and quiet.axes is None and display.shown == []
    monkeypatch.setattr(live_plot_module, "in_jupyter_kernel", lambda: True)
    clock = Clock()
    live = LiveCurve(every=1, min_seconds=0.0, clock=clock)  # auto, in a kernel: on
    for step in range(1, 4):
        clock.now += 1.0
        live.update(step, loss=1.0)
    live.close()
    assert live.enabled and len(display.shown) == 1 and display.shown[0].startswith(b"\x89PNG")
    assert len(display.updates) == 3 and LiveCurve(enabled=False).update(1, loss=1.0) == 0.0


def test_the_lessons_loops_draw_each_run_in_one_shared_figure():
    """amp.train_curve, elasticity's train_context and run_schedule: one figure, the current run."""
    from attnflex_lab.elasticity.context import ContextConfig, train_context
    from attnflex_lab.elasticity.experiment import SwitchConfig, run_schedule
    from attnflex_lab.perf import amp

    clock, display = Clock(), FakeDisplay()
    data = _data()
    with _curve(clock, display, every=5, min_seconds=0.0) as live:
        for dtype in (None, torch.bfloat16):
            torch.manual_seed(0)
            curve = amp.train_curve(nn.Linear(4, 2), lambda step: data[16 * step:16 * step + 16],
                                    nn.functional.cross_entropy, steps=5, amp_dtype=dtype, live=live)
            assert live.title == curve.precision and live.series["loss"] == ([1, 2, 3, 4, 5], curve.losses)
        _, losses = train_context(ContextConfig(length=8, d_model=16, n_heads=2, n_layers=1, steps=3,
                                                batch_size=4, warmup=1, seed=7), live=live)
        assert live.title == "seed 7" and live.series["loss"] == ([1, 2, 3], losses)
        run = run_schedule(SwitchConfig(schedule=(0, 1), max_phase_steps=30, hold_steps=0), live=live)
        assert live.series["accuracy"] == (list(range(1, len(run.acc) + 1)), list(run.acc))
    assert len(display.shown) == 1 and live.draws > 4
