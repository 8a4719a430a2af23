"""Turn an executed notebook's live outputs into static ones for the site (no kernel, no CDN).

Two kinds of output need a kernel or a download to show anything:

- ipywidgets. nbclient (``store_widget_state=True``) keeps every widget's state in the notebook's
  metadata, including what each ``Output`` widget captured: the first drawing that
  ``interactive_output`` made when the explorer was built. ``static_widget_outputs`` replaces a
  widget's view with a note naming its controls and their values, then that drawing; display-only
  widgets (a tqdm bar: HTML + progress) become a small HTML snapshot. No notebook and no lab
  function needs to know about the site.
- plotly figures, which plotly's default renderer in a kernel emits as
  ``application/vnd.plotly.v1+json`` only. ``plotly_html`` adds a ``text/html`` twin: a div and the
  call that draws it, with plotly.js loaded once per page from the site's own ``_static/``.

And one that needs a server: ``%tensorboard`` embeds an iframe that a script points at the
kernel machine's TensorBoard port (localhost), a broken frame on any other machine.
``static_server_frames`` puts a note in its place.
"""

from __future__ import annotations

import html
import json
import uuid

import site_live

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY = "application/vnd.plotly.v1+json"

# Models a reader would drag, tick or pick in a live kernel.
CONTROL_MODELS = {
    "IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "IntRangeSliderModel",
    "FloatRangeSliderModel", "SelectionSliderModel", "SelectionRangeSliderModel", "DropdownModel",
    "CheckboxModel", "ToggleButtonModel", "ToggleButtonsModel", "RadioButtonsModel", "SelectModel",
    "SelectMultipleModel", "TextModel", "TextareaModel", "IntTextModel", "FloatTextModel",
    "BoundedIntTextModel", "BoundedFloatTextModel", "ButtonModel", "PlayModel", "ComboboxModel",
}
BOX_MODELS = {"VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel",
              "StackModel"}
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}
TEXT_MODELS = {"HTMLModel", "LabelModel", "HTMLMathModel"}

# tensorboard.notebook's iframe (its id) and the script that points it at the server's port.
TENSORBOARD_FRAME = 'id="tensorboard-frame-'
TENSORBOARD_NOTE = ("TensorBoard's dashboard is shown here when the notebook runs in Jupyter or Colab "
                    "(it is served by a TensorBoard process next to the kernel, which a static page "
                    "does not have).")

NOTE = ("Interactive in Jupyter or Colab (it needs a live kernel): {controls}. "
        "Shown here: its first drawing.")


def widget_states(nb) -> dict:
    """model id -> {"model_name", "state"} from the notebook's saved widget state ({} if none)."""
    saved = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {})
    return saved.get("state", {})


def _model_id(ref) -> str | None:
    if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
        return ref[len("IPY_MODEL_"):]
    return None


def _control_text(state: dict, model_name: str) -> str:
    """'temperature = 1' for a control, from its saved state."""
    label = (state.get("description") or model_name.removesuffix("Model")).rstrip(": ")
    if "_options_labels" in state and isinstance(state.get("index"), int):
        labels = state["_options_labels"]
        value = labels[state["index"]] if 0 <= state["index"] < len(labels) else None
    else:
        value = state.get("value")
    if model_name == "ButtonModel" or value is None:
        return label
    return f"{label} = {value:.4g}" if isinstance(value, float) else f"{label} = {value}"


def _walk(model_id: str, states: dict, controls: list[str], pieces: list, seen: set) -> None:
    """Depth-first over a widget tree, in display order, collecting control readouts and what to show.

    ``pieces`` gets nbformat outputs (an Output widget's capture) and HTML strings (display-only
    widgets), in order.
    """
    if model_id in seen or model_id not in states:
        return
    seen.add(model_id)
    name = states[model_id].get("model_name", "")
    state = states[model_id].get("state", {})
    if name in CONTROL_MODELS:
        controls.append(_control_text(state, name))
    elif name == "OutputModel":
        for out in state.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:  # a widget displayed inside an Output widget
                _walk(view.get("model_id", ""), states, controls, pieces, seen)
            else:
                pieces.append(out)
    elif name in PROGRESS_MODELS:
        low, high = state.get("min", 0), state.get("max", 100)
        pieces.append(f'<progress value="{state.get("value", 0) - low}" max="{high - low}"></progress>')
    elif name in TEXT_MODELS:
        text = state.get("value", "")
        pieces.append(f"<span>{text if name != 'LabelModel' else html.escape(str(text))}</span>")
    elif name in BOX_MODELS:
        start = len(pieces)
        for child in state.get("children", []):
            child_id = _model_id(child)
            if child_id:
                _walk(child_id, states, controls, pieces, seen)
        # A row of display-only pieces (tqdm: text, bar, text) stays one row.
        if name == "HBoxModel" and pieces[start:] and all(isinstance(p, str) for p in pieces[start:]):
            pieces[start:] = ['<div class="afl-widget-row">' + " ".join(pieces[start:]) + "</div>"]


def _html_output(fragment: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": fragment}}


def static_widget_outputs(output: dict, states: dict, records: dict | None = None,
                          counter: list[int] | None = None) -> list[dict]:
    """The static outputs that stand for one widget-view output (itself when it is not a widget):
    its precomputed states and HTML controls where ``records`` (site_live) has them, else a note."""
    view = output.get("data", {}).get(WIDGET_VIEW)
    if not view:
        return [output]
    live = site_live.live_widget(view.get("model_id", ""), states, records or {}, counter or [0])
    if live:
        return [_html_output(live)]
    if site_live.controls_shown_with_drawing(view.get("model_id", ""), states, records or {}):
        return [_html_output(f'<div class="afl-live-note">{html.escape(site_live.SHOWN_WITH_DRAWING)}</div>')]
    controls: list[str] = []
    pieces: list = []
    _walk(view.get("model_id", ""), states, controls, pieces, set())
    shown = []
    if controls:
        note = NOTE.format(controls=", ".join(controls))
        why = site_live.why_static(view.get("model_id", ""), states, records) if records is not None else ""
        note += f" Not precomputed for this page: {why}." if why else ""
        shown.append(_html_output(f'<div class="afl-widget-note">{html.escape(note)}</div>'))
    for piece in pieces:
        shown.append(_html_output(piece) if isinstance(piece, str) else piece)
    if not shown:  # a widget whose state was not saved: say so instead of showing nothing
        text = output["data"].get("text/plain", "a widget")
        shown.append(_html_output('<div class="afl-widget-note">'
                                  f"{html.escape(str(text))} (needs a live kernel)</div>"))
    return shown


def static_server_frames(output: dict) -> list[dict]:
    """A note instead of an iframe served by the kernel's machine (``%tensorboard``), else the output."""
    page = output.get("data", {}).get("text/html", "")
    page = "".join(page) if isinstance(page, list) else page
    if TENSORBOARD_FRAME not in page:
        return [output]
    return [_html_output(f'<div class="afl-widget-note">{html.escape(TENSORBOARD_NOTE)}</div>')]


def plotly_html(figure: dict, div_id: str | None = None) -> str:
    """The div and script that draw a plotly figure (its JSON as plotly stores it) with window.Plotly."""
    if not isinstance(figure, dict) or "data" not in figure:
        raise ValueError(f"a plotly figure needs a 'data' key, got {type(figure).__name__} "
                         f"with keys {sorted(figure) if isinstance(figure, dict) else '-'}")
    div_id = div_id or f"afl-plotly-{uuid.uuid4().hex[:12]}"
    spec = json.dumps({"data": figure["data"], "layout": figure.get("layout", {}),
                       "config": {"responsive": True, "displaylogo": False}})
    spec = spec.replace("</", "<\\/")  # a label holding "</script>" must not end the script early
    return (f'<div id="{div_id}" class="plotly-graph-div afl-plotly"></div>\n'
            f"<script>(function () {{ const spec = {spec};\n"
            f'Plotly.newPlot("{div_id}", spec.data, spec.layout, spec.config); }})();</script>')


def make_static(nb, records: dict | None = None) -> dict:
    """Rewrite an executed notebook in place for a static page; return counts of what changed
    (``records``: the precomputed widget states, see site_live)."""
    states = widget_states(nb)
    counts = {"widgets": 0, "plotly": 0, "frames": 0, "live": 0}
    counter = [0]
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        expanded = []
        for output in cell.get("outputs", []):
            counts["widgets"] += WIDGET_VIEW in output.get("data", {})
            shown_outputs = static_widget_outputs(output, states, records, counter)
            live = [str(o["data"]["text/html"]) for o in shown_outputs if o is not output and
                    'class="afl-live"' in str(o.get("data", {}).get("text/html", ""))]
            counts["live"] += len(live)
            counts["plotly"] += sum('{"plotly": ' in page for page in live)  # a state drawn by plotly.js
            for shown in shown_outputs:
                frames = static_server_frames(shown)
                counts["frames"] += frames[0] is not shown
                expanded.extend(frames)
        for output in expanded:  # a figure drawn inside a widget gets its twin too
            data = output.get("data", {})
            if PLOTLY in data and "text/html" not in data:
                counts["plotly"] += 1
                output["data"] = {**data, "text/html": plotly_html(data[PLOTLY])}
        cell["outputs"] = expanded
    # Without the state, nbconvert adds no widget manager (which it would load from a CDN).
    nb.get("metadata", {}).pop("widgets", None)
    return counts
