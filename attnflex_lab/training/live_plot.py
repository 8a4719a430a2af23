"""A live loss curve under the progress bar, for ``fit()`` in a notebook.

One small matplotlib figure (Agg, never pyplot, so no figure is left open in pyplot's registry)
is drawn into one PNG display that is updated in place: the notebook gets one output, not one
figure per update. Redrawing costs tens of milliseconds, so it happens at most every ``every``
steps, at most every ``min_seconds``, and never more often than keeps drawing under a tenth of the
wall time (a slow machine gets fewer redraws); the last drawing, at the end of the run, stays in the
output as a static figure (what a rendered page shows).

``TrainConfig.live_plot``: None (auto) draws it inside a Jupyter kernel, for every run (also one
whose progress bar is hidden, e.g. a loop over seeds: each run gets its own small figure); True /
False force it. Scripts, tests and the CLI run outside a kernel, so auto is off there.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable

from .callbacks import TrainState
from .config import TrainConfig


def in_jupyter_kernel() -> bool:
    """True inside a Jupyter (or Colab) kernel; False in scripts, pytest and a terminal IPython."""
    ipython = sys.modules.get("IPython")  # never imported here just to ask
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def wants_live_plot(cfg: TrainConfig, rank: int) -> bool:
    if rank != 0:
        return False
    if cfg.live_plot is None:
        return in_jupyter_kernel()
    return cfg.live_plot


def _ipython_display(obj):
    from IPython.display import display

    return display(obj, display_id=True)


def _png(data: bytes):
    from IPython.display import Image

    return Image(data=data, format="png")


class LivePlot:
    """Callback: the training loss (and any eval metric with "loss" in its name) against steps.

    ``display(obj) -> handle`` shows the first drawing and returns a handle with ``update(obj)``
    (IPython's ``display(obj, display_id=True)`` by default); ``image(png_bytes)`` wraps a PNG for it.
    """

    def __init__(self, every: int = 10, min_seconds: float = 0.5, *, display: Callable | None = None,
                 image: Callable[[bytes], object] | None = None, clock: Callable[[], float] = time.monotonic,
                 figsize: tuple[float, float] = (5.0, 2.4), dpi: int = 80):
        if not isinstance(every, int) or every <= 0:
            raise ValueError(f"every must be a positive int (steps between redraws), got {every!r}")
        if not min_seconds >= 0:
            raise ValueError(f"min_seconds must be >= 0, got {min_seconds!r}")
        self.every, self.min_seconds = every, min_seconds
        self.display = display or _ipython_display
        self.image = image or _png
        self.clock = clock
        self.figsize, self.dpi = figsize, dpi
        self.draws = 0                 # PNGs rendered (the first is displayed, the rest update it)
        self._fig = self._axes = self._handle = None
        self._last_step, self._last_time = 0, 0.0
        self._gap = min_seconds        # seconds between redraws: min_seconds, or 10x a drawing's cost

    def on_fit_start(self, state: TrainState) -> None:
        if state.rank != 0:
            return
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._fig = Figure(figsize=self.figsize, dpi=self.dpi, layout="constrained")
        FigureCanvasAgg(self._fig)
        self._axes = self._fig.add_subplot()
        self._last_step, self._last_time = state.step, self.clock()

    def on_step_end(self, state: TrainState) -> None:
        if self._fig is None or state.step - self._last_step < self.every:
            return
        if self.clock() - self._last_time < self._gap:
            return
        self._draw(state)

    def on_fit_end(self, state: TrainState) -> None:
        if self._fig is None:
            return
        self._draw(state)  # the final, static figure
        self._fig = self._axes = self._handle = None  # nothing keeps the figure alive any more

    def _draw(self, state: TrainState) -> None:
        history, ax, started, wall_started = state.history, self._axes, self.clock(), time.perf_counter()
        ax.clear()
        steps, losses = history.values("loss")
        ax.plot(steps, losses, lw=1.2, label="train loss")
        for key in sorted({k for r in history.evals for k in r if "loss" in k}):
            eval_steps, values = history.values(key, "evals")
            ax.plot(eval_steps, values, "o-", ms=3, lw=1.2, label=key)
        ax.set_xlim(0, max(state.cfg.steps, 1))
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        last = f"{losses[-1]:.4f}" if losses else "–"
        ax.set_title(f"step {state.step}/{state.cfg.steps} · loss {last}", fontsize=9)
        if losses or history.evals:
            ax.legend(fontsize=8, loc="upper right")
        buffer = io.BytesIO()
        self._fig.savefig(buffer, format="png")
        picture = self.image(buffer.getvalue())
        if self._handle is None:
            self._handle = self.display(picture)
        else:
            self._handle.update(picture)
        self.draws += 1
        self._last_step, self._last_time = state.step, self.clock()
        self._gap = max(self.min_seconds, 10 * (self._last_time - started))
        state.overhead_seconds += time.perf_counter() - wall_started  # not training: tokens/s leave it out


def live_plot_callbacks(cfg: TrainConfig, rank: int) -> list:
    """The LivePlot that ``fit`` adds by itself when ``cfg.live_plot`` asks for one (see the module)."""
    if not wants_live_plot(cfg, rank):
        return []
    every = max(cfg.log_every, cfg.steps // 100)  # at most ~100 redraws by steps, fewer by time
    return [LivePlot(every=every)]
