"""Precompute a widget's drawings for the static site (kernel side of ``scripts/build_site.py``).

The site build starts each lesson's kernel with ``install(folder, max_states)`` (an IPython startup
file). From then on every ``ipywidgets.interactive_output`` (and ``interactive``/``interact``) is
recorded: its callback and its controls. After the cell that built it has run, the callback is
called again over a bounded grid of the controls' values and each state's outputs (matplotlib PNG,
plotly JSON, printed text) are written to ``folder/<output model id>.json``; the page swaps them as
the reader moves HTML controls. Lessons and the lab's helpers need not know about any of this.

Costs are bounded: CPU seconds per widget and per page (``time.process_time``, so a loaded machine
does not change the grid) and bytes per widget; the grid shrinks to fit them, judged from the first
drawing's cost and size.

The grid: each control offers a list of values (a slider its steps, a dropdown its options, a
checkbox both, a text box example inputs); ``grid_counts`` gives every control a second value before
any gets a third, and so on, while the product stays within ``max_states``. Sliders are subsampled
evenly (ends and the starting value kept); small menus come out exhaustive.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from pathlib import Path

MAX_STATES = 50             # states stored per widget (Neuromatch's precomputed-slider bound)
MAX_WIDGET_BYTES = 2 << 20  # one widget's states, base64 PNGs included (a page holds 8 MB): the grid
                            # shrinks to fit, from the size of the first drawing
MAX_SECONDS = 60.0          # CPU seconds to precompute one widget: the grid shrinks to fit, from the
                            # first drawing's cost; a widget whose two drawings cannot fit stays a note
PAGE_SECONDS = 300.0        # CPU seconds for all of a lesson's widgets together (later ones get what is left)
EXAMPLE_INPUTS = 6          # example inputs offered for a text box
SLIDERS = {"IntSlider", "FloatSlider", "FloatLogSlider", "SelectionSlider"}
MENUS = {"Dropdown", "RadioButtons", "ToggleButtons", "Select", "SelectionSlider"}
SWITCHES = {"Checkbox", "ToggleButton"}
TEXTS = {"Text", "Textarea", "Combobox"}


def grid_counts(sizes: list[int], max_states: int) -> list[int]:
    """How many values of each control to keep: round robin in display order (the first control is
    usually the widget's main one), so every control gets a second value before any gets a third,
    the product staying ≤ max_states."""
    if max_states < 1 or any(n < 1 for n in sizes):
        raise ValueError(f"grid_counts needs sizes ≥ 1 and max_states ≥ 1, got {sizes} and {max_states}")
    counts = [1] * len(sizes)
    grew = True
    while grew:
        grew = False
        for i in sorted(range(len(sizes)), key=lambda j: (counts[j], j)):
            product = math.prod(counts) // counts[i] * (counts[i] + 1)
            if counts[i] < sizes[i] and product <= max_states:
                counts[i] += 1
                grew = True
                break
    return counts


def subsample(size: int, keep: int, start: int) -> list[int]:
    """``keep`` indices of ``range(size)``, evenly spread with both ends, always holding ``start``."""
    if not 1 <= keep <= size or not 0 <= start < size:
        raise ValueError(f"subsample needs 1 ≤ keep ≤ size and 0 ≤ start < size, got {keep}, {size}, {start}")
    if keep == 1:
        return [start]
    chosen = sorted({round(i * (size - 1) / (keep - 1)) for i in range(keep)})
    if start not in chosen:  # swap the nearest pick for the starting value
        chosen[min(range(len(chosen)), key=lambda j: abs(chosen[j] - start))] = start
    return sorted(set(chosen))


def text_examples(value: str, declared=(), count: int = EXAMPLE_INPUTS) -> list[str]:
    """Example inputs for a text box: the declared ones (a widget's ``site_examples``), else the
    starting text and variants of it (digits rotated, reversed, sorted, shortened, shuffled)."""
    if declared:
        return list(dict.fromkeys([value, *declared]))[:max(count, 1 + len(declared))]
    shuffled = list(value)
    random.Random(0).shuffle(shuffled)
    variants = [value, value.translate(str.maketrans("0123456789", "3456789012")), value[::-1],
                "".join(sorted(value)), value[: max(1, len(value) // 2)], "".join(shuffled)]
    # a page's menu shows runs of spaces as one: variants differ in more than spacing
    variants = [value] + [" ".join(v.split()) for v in variants[1:]]
    return [v for v in dict.fromkeys(variants) if v.strip()][:count]


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def control_choices(widget) -> dict:
    """kind, description, every value the control can take and their labels, and the start index."""
    kind = type(widget).__name__
    if kind in MENUS:
        values, labels = list(widget._options_values), [str(x) for x in widget._options_labels]
        start = widget.index if isinstance(widget.index, int) else 0
    elif kind in SWITCHES:
        values, labels, start = [False, True], ["off", "on"], int(bool(widget.value))
    elif kind in TEXTS:
        declared = getattr(widget, "site_examples", ()) or getattr(widget, "options", ())
        values = text_examples(str(widget.value), tuple(declared))
        labels, start = list(values), 0
    elif kind in SLIDERS:
        steps = max(0, int(round((widget.max - widget.min) / widget.step))) if widget.step else 0
        exponents = [widget.min + i * widget.step for i in range(steps + 1)]
        if kind == "IntSlider":
            values = [int(x) for x in exponents]
        elif kind == "FloatLogSlider":
            values = [float(widget.base ** x) for x in exponents]
        else:
            values = [round(float(x), 12) for x in exponents]
        start = min(range(len(values)), key=lambda i: abs(values[i] - widget.value))
        values[start] = widget.value  # the first drawing's own value, exactly
        labels = [_fmt(v) for v in values]
    else:
        raise TypeError(f"{kind} is not a control the site can precompute")
    return {"kind": kind, "description": str(getattr(widget, "description", "") or ""), "values": values,
            "labels": labels, "start": start, "total": len(values), "model_id": widget.model_id}


def _outputs(captured) -> list[dict]:
    """A captured run as site outputs: {"text"}, {"png"}, {"plotly"} or {"html"}, in order."""
    shown = [{"text": captured.stdout}] if captured.stdout.strip() else []
    for rich in captured.outputs:
        data = rich.data
        if "application/vnd.plotly.v1+json" in data:
            shown.append({"plotly": data["application/vnd.plotly.v1+json"]})
        elif "image/png" in data:
            shown.append({"png": data["image/png"]})
        elif "text/html" in data:
            shown.append({"html": data["text/html"]})
        elif "text/plain" in data:
            shown.append({"text": data["text/plain"]})
    if captured.stderr.strip():
        shown.append({"text": captured.stderr})
    return shown


def _run_state(call, kwargs: dict) -> list[dict]:
    import matplotlib.pyplot as plt
    from IPython.utils.capture import capture_output
    from ipywidgets.widgets.interaction import show_inline_matplotlib_plots

    with capture_output() as captured:
        try:
            call(**kwargs)
            show_inline_matplotlib_plots()
        except Exception as err:  # what the notebook would show under the widget
            print(f"{type(err).__name__}: {err}")
        finally:
            plt.close("all")
    return _outputs(captured)


def _rng_states():
    import numpy as np
    import torch
    return random.getstate(), np.random.get_state(), torch.get_rng_state()  # noqa: NPY002 (the lesson's own RNG)


def _restore_rng(saved) -> None:
    import numpy as np
    import torch
    random.setstate(saved[0])
    np.random.set_state(saved[1])  # noqa: NPY002 (the lesson's own RNG)
    torch.set_rng_state(saved[2])


def precompute(call, controls: dict, max_states: int = MAX_STATES, max_bytes: int = MAX_WIDGET_BYTES,
               max_seconds: float = MAX_SECONDS) -> dict:
    """Run ``call(**values)`` over the grid; return the record the site build reads (``note`` says
    why a widget stays static: a control the site cannot offer, too many bytes or too slow).

    Every state starts from the random state the lesson had after the cell, which is restored at
    the end: precomputing changes nothing that later cells see."""
    saved = _rng_states()
    try:
        return _precompute(call, controls, max_states, max_bytes, max_seconds, lambda: _restore_rng(saved))
    finally:
        _restore_rng(saved)


def _precompute(call, controls, max_states, max_bytes, max_seconds, reset_rng) -> dict:
    record = {"controls": [], "states": {}, "pool": [], "note": None}
    try:
        choices = {name: control_choices(widget) for name, widget in controls.items()}
    except TypeError as err:
        return {**record, "note": str(err)}
    if max_seconds <= 0:
        return {**record, "note": "the page's time for precomputing widgets was spent on the widgets above it"}
    started = time.process_time()
    first = _run_state(call, {name: c["values"][c["start"]] for name, c in choices.items()})
    first_seconds = time.process_time() - started
    fits = int(0.9 * max_bytes // max(len(json.dumps(first)), 1))  # the grid shrinks to the byte budget
    if fits < 2:
        return {**record, "note": f"one drawing takes {len(json.dumps(first)) / 2**20:.1f} MB"}
    in_time = int(max_seconds // max(first_seconds, 1e-3))        # and to the time budget
    if in_time < 2:
        return {**record, "note": f"one drawing takes {first_seconds:.1f} s of CPU; {max_seconds:.1f} s "
                                  "were left for this widget"}
    counts = grid_counts([c["total"] for c in choices.values()], min(max_states, fits, in_time))
    for (name, choice), count in zip(choices.items(), counts, strict=True):
        # text examples come best first: keep the first ones; steps and options: spread evenly
        keep = list(range(count)) if choice["kind"] in TEXTS else subsample(choice["total"], count, choice["start"])
        record["controls"].append({**{k: v for k, v in choice.items() if k != "values"}, "name": name,
                                   "labels": [choice["labels"][i] for i in keep],
                                   "start": keep.index(choice["start"]), "indices": keep})
    start_key = ",".join(str(c["start"]) for c in record["controls"])
    pool_index: dict[str, int] = {}
    size = 0
    for position in itertools.product(*[range(len(c["indices"])) for c in record["controls"]]):
        key = ",".join(map(str, position))
        kwargs = {c["name"]: choices[c["name"]]["values"][c["indices"][i]]
                  for c, i in zip(record["controls"], position, strict=True)}
        reset_rng()
        refs = []
        for shown in first if key == start_key else _run_state(call, kwargs):
            text = json.dumps(shown)
            if text not in pool_index:
                pool_index[text] = len(record["pool"])
                record["pool"].append(shown)
                size += len(text)
            refs.append(pool_index[text])
        record["states"][key] = refs
        if size > max_bytes:
            return {**record, "states": {}, "pool": [], "note": (
                f"its drawings pass {max_bytes / 2**20:.0f} MB, too much to store in the page")}
        if time.process_time() - started > 2 * max_seconds:  # states far dearer than the first drawing
            return {**record, "states": {}, "pool": [], "note": (
                f"precomputing its states took over {2 * max_seconds:.0f} s of CPU")}
    return record


def _descendants(widget) -> set[str]:
    """Model ids of a widget and of everything in its boxes."""
    found = {getattr(widget, "model_id", None)}
    for child in getattr(widget, "children", ()) or ():
        found |= _descendants(child)
    return found


class Recorder:
    """Remembers each interactive drawing built in a cell; precomputes those that have been
    displayed once the cell is done (one built only to be checked costs nothing)."""

    def __init__(self, folder: Path, max_states: int, max_seconds: float, page_seconds: float = PAGE_SECONDS):
        self.folder, self.max_states, self.max_seconds = Path(folder), max_states, max_seconds
        self.page_left = page_seconds  # CPU seconds left for this lesson's widgets
        self.pending: list[tuple[str, object, dict]] = []
        self.shown: set[str] = set()

    def add(self, output, call, controls: dict) -> None:
        self.pending.append((output.model_id, call, dict(controls)))

    def displayed(self, widget) -> None:
        self.shown |= _descendants(widget)

    def after_cell(self, *_args) -> None:
        ready = [entry for entry in self.pending if entry[0] in self.shown]
        self.pending = [entry for entry in self.pending if entry[0] not in self.shown]
        for model_id, call, controls in ready:
            started = time.process_time()
            record = precompute(call, controls, self.max_states,
                                max_seconds=max(0.0, min(self.max_seconds, self.page_left)))
            spent = time.process_time() - started
            self.page_left -= spent
            record["seconds"] = round(spent, 2)  # CPU
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{model_id}.json").write_text(json.dumps(record), encoding="utf-8")


def install(folder, max_states: int = MAX_STATES, max_seconds: float = MAX_SECONDS, shell=None,
            page_seconds: float = PAGE_SECONDS) -> Recorder:
    """Record every ``interactive_output`` and ``interactive`` from now on (in this kernel only)."""
    import functools

    import ipywidgets
    from ipywidgets.widgets import interaction

    recorder = Recorder(Path(folder), max_states, max_seconds, page_seconds)
    original_output = interaction.interactive_output

    @functools.wraps(original_output)
    def interactive_output(f, controls):
        output = original_output(f, controls)
        recorder.add(output, f, controls)
        return output

    original_init = interaction.interactive.__init__

    @functools.wraps(original_init)
    def interactive_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        live = {w._kwarg: w for w in self.kwargs_widgets if hasattr(w, "model_id")}
        fixed = {w._kwarg: w.value for w in self.kwargs_widgets if not hasattr(w, "model_id")}
        if live and getattr(self, "manual", False) is False:
            recorder.add(self.out, functools.partial(self.f, **fixed), live)

    original_bundle = ipywidgets.Widget._repr_mimebundle_

    @functools.wraps(original_bundle)
    def repr_mimebundle(self, *args, **kwargs):  # how a widget is displayed (display() or a cell's value)
        recorder.displayed(self)
        return original_bundle(self, *args, **kwargs)

    ipywidgets.Widget._repr_mimebundle_ = repr_mimebundle
    interaction.interactive_output = ipywidgets.interactive_output = interactive_output
    ipywidgets.widgets.interactive_output = interactive_output
    interaction.interactive.__init__ = interactive_init
    shell = shell or __import__("IPython").get_ipython()
    if shell is not None:
        shell.events.register("post_run_cell", recorder.after_cell)
    return recorder
