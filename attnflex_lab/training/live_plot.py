"""A live loss curve under the progress bar, for ``fit()`` and for any other training loop.

One small matplotlib figure (Agg, never pyplot, so no figure is left open in pyplot's registry)
is drawn into one PNG display that is updated in place: the notebook gets one output, not one
figure per update. Redrawing costs tens of milliseconds, so it happens at most every ``every``
steps, at most every ``min_seconds``, and never more often than keeps drawing under a tenth of the
wall time (a slow machine gets fewer redraws); the last drawing, at ``close()``, stays in the
output as a static figure (what a rendered page shows).

``LiveCurve`` is that figure for any loop: ``update(step, loss=...)`` each step, ``close()`` at the
end; ``start(title=...)`` begins the next run of a loop over seeds or settings in the same figure
(it shows the current run). It is on inside a Jupyter kernel and a no-op elsewhere (scripts, tests,
the CLI), unless ``enabled`` says otherwise. ``LivePlot`` is the callback that feeds one from
``fit``'s History. ``TrainConfig.live_plot``: None (auto) adds it inside a Jupyter kernel, for every
run (also one whose progress bar is hidden); True / False force it.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable

from .callbacks import TrainState
from .config import TrainConfig

DOTTED_POINTS = 30  # a series with at most this many points (evals, short runs) is drawn with dots


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


class LiveCurve:
    """Named curves against steps, redrawn in place in one notebook output (see the module).

    ``display(obj) -> handle`` shows the first drawing and returns a handle with ``update(obj)``
    (IPython's ``display(obj, display_id=True)`` by default); ``image(png_bytes)`` wraps a PNG for it.
    ``enabled``: None (auto) is on inside a Jupyter kernel only; when off every method returns at once.
    """

    def __init__(self, every: int = 10, min_seconds: float = 0.5, *, total_steps: int | None = None,
                 title: str = "", ylabel: str = "loss", enabled: bool | None = None,
                 display: Callable | None = None, image: Callable[[bytes], object] | None = None,
                 clock: Callable[[], float] = time.monotonic, figsize: tuple[float, float] = (5.0, 2.4),
                 dpi: int = 80):
        if not isinstance(every, int) or every <= 0:
            raise ValueError(f"every must be a positive int (steps between redraws), got {every!r}")
        if not min_seconds >= 0:
            raise ValueError(f"min_seconds must be >= 0, got {min_seconds!r}")
        if enabled not in (None, True, False):
            raise ValueError(f"enabled must be None (auto), True or False, got {enabled!r}")
        self.enabled = in_jupyter_kernel() if enabled is None else enabled
        self.every, self.min_seconds = every, min_seconds
        self.title, self.ylabel, self.total_steps = title, ylabel, total_steps
        self.display = display or _ipython_display
        self.image = image or _png
        self.clock = clock
        self.figsize, self.dpi = figsize, dpi
        self.draws = 0                 # PNGs rendered (the first is displayed, the rest update it)
        self.series: dict[str, tuple[list[int], list[float]]] = {}  # name -> (steps, values), this run
        self.axes = None
        self._fig = self._handle = None
        self._started = False
        self._last_step, self._last_time = 0, 0.0
        self._gap = min_seconds        # seconds between redraws: min_seconds, or 10x a drawing's cost

    def __enter__(self) -> LiveCurve:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, step: int = 0, *, title: str | None = None, total_steps: int | None = None) -> None:
        """Begin a run at ``step``: clear the curves, keep the figure and its output (one per loop)."""
        if not self.enabled:
            return
        if self._fig is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            self._fig = Figure(figsize=self.figsize, dpi=self.dpi, layout="constrained")
            FigureCanvasAgg(self._fig)
            self.axes = self._fig.add_subplot()
        self.title = self.title if title is None else title
        self.total_steps = self.total_steps if total_steps is None else total_steps
        self.series = {}
        self._started = True
        self._last_step, self._last_time = step, self.clock()

    def add(self, step: int, **values: float) -> None:
        """Record points at ``step`` without drawing."""
        if not self.enabled:
            return
        if not self._started:
            self.start()
        for name, value in values.items():
            steps, ys = self.series.setdefault(name, ([], []))
            steps.append(step)
            ys.append(float(value))

    def update(self, step: int, **values: float) -> float:
        """Record points at ``step``; redraw if due. Returns the wall seconds spent drawing (0 if none)."""
        if not self.enabled:
            return 0.0
        self.add(step, **values)
        if step - self._last_step < self.every or self.clock() - self._last_time < self._gap:
            return 0.0
        return self._draw(step)

    def close(self) -> float:
        """Draw the final, static figure and let go of it. Returns the wall seconds spent drawing."""
        if not self.enabled or self._fig is None:
            return 0.0
        steps = [s[-1] for s, _ in self.series.values() if s]
        seconds = self._draw(max(steps, default=self._last_step))
        self._fig = self.axes = self._handle = None  # nothing keeps the figure alive any more
        self._started = False
        return seconds

    def _draw(self, step: int) -> float:
        ax, started, wall_started = self.axes, self.clock(), time.perf_counter()
        ax.clear()
        for name, (steps, ys) in self.series.items():
            dotted = len(ys) <= DOTTED_POINTS
            ax.plot(steps, ys, "o-" if dotted else "-", ms=3, lw=1.2, label=name)
        if self.total_steps:
            ax.set_xlim(0, max(self.total_steps, 1))
        ax.set_xlabel("step")
        ax.set_ylabel(self.ylabel)
        name, (_, ys) = next(iter(self.series.items()), ("", ([], [])))
        last = f"{name} {ys[-1]:.4f}" if ys else "–"
        of = f"/{self.total_steps}" if self.total_steps else ""
        ax.set_title(" · ".join(filter(None, [self.title, f"step {step}{of}", last])), fontsize=9)
        if self.series:
            ax.legend(fontsize=8, loc="upper right")
        buffer = io.BytesIO()
        self._fig.savefig(buffer, format="png")
        picture = self.image(buffer.getvalue())
        if self._handle is None:
            self._handle = self.display(picture)
        else:
            self._handle.update(picture)
        self.draws += 1
        self._last_step, self._last_time = step, self.clock()
        self._gap = max(self.min_seconds, 10 * (self._last_time - started))
        return time.perf_counter() - wall_started


class LivePlot:
    """Callback: the training loss (and any eval metric with "loss" in its name) against steps, drawn
    by a ``LiveCurve`` (the arguments are its own) fed from ``state.history``."""

    def __init__(self, every: int = 10, min_seconds: float = 0.5, *, display: Callable | None = None,
                 image: Callable[[bytes], object] | None = None, clock: Callable[[], float] = time.monotonic,
                 figsize: tuple[float, float] = (5.0, 2.4), dpi: int = 80):
        self.curve = LiveCurve(every, min_seconds, enabled=True, display=display, image=image, clock=clock,
                               figsize=figsize, dpi=dpi)
        self._fed_steps = self._fed_evals = 0  # History records already given to the curve
        self._active = False

    @property
    def draws(self) -> int:
        return self.curve.draws

    def on_fit_start(self, state: TrainState) -> None:
        if state.rank != 0:
            return
        self.curve.start(state.step, total_steps=state.cfg.steps)
        self._fed_steps = self._fed_evals = 0
        self._active = True

    def on_step_end(self, state: TrainState) -> None:
        if self._active:
            self._feed(state.history)
            state.overhead_seconds += self.curve.update(state.step)  # drawing is not training: tokens/s leave it out

    def on_fit_end(self, state: TrainState) -> None:
        if self._active:
            self._feed(state.history)
            state.overhead_seconds += self.curve.close()
            self._active = False

    def _feed(self, history) -> None:
        """Give the curve the History records it has not seen (evals land after on_step_end)."""
        for record in history.steps[self._fed_steps:]:
            self.curve.add(record["step"], **{"train loss": record["loss"]})
        for record in history.evals[self._fed_evals:]:
            self.curve.add(record["step"], **{k: v for k, v in record.items() if "loss" in k and k != "step"})
        self._fed_evals, self._fed_steps = len(history.evals), len(history.steps)


def live_plot_callbacks(cfg: TrainConfig, rank: int) -> list:
    """The LivePlot that ``fit`` adds by itself when ``cfg.live_plot`` asks for one (see the module)."""
    if not wants_live_plot(cfg, rank):
        return []
    every = max(cfg.log_every, cfg.steps // 100)  # at most ~100 redraws by steps, fewer by time
    return [LivePlot(every=every)]
