"""Widgets that stay interactive on the static site: precomputed states swapped by a small script.

While the site build executed a lesson, ``attnflex_lab/viz/site_states.py`` recorded every
``interactive_output`` and wrote, per Output widget, the grid of its controls' values and each
state's drawing (``<output model id>.json``). Here a widget whose tree holds such an Output becomes
real HTML controls, laid out as the widget's boxes lay them out, an area showing the current state,
and the states as JSON; ``site/static/live-widgets.js`` swaps the drawing as the reader moves a
control. A widget that could not be precomputed keeps the static note, which then says why.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_PAGE_BYTES = 8 << 20  # a lesson page, every drawing included; past it the build fails
SLIDER_MODELS = {"IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "SelectionSliderModel"}
SWITCH_MODELS = {"CheckboxModel", "ToggleButtonModel"}
TEXT_MODELS = {"TextModel", "TextareaModel", "ComboboxModel"}
BOXES = {"HBoxModel": "afl-live-row", "VBoxModel": "afl-live-col", "BoxModel": "afl-live-col",
         "GridBoxModel": "afl-live-row"}


def load_records(folder: Path) -> dict[str, dict]:
    """Output model id -> what site_states recorded for it ({} when the folder is absent)."""
    if not folder.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}


def _ids_in(model_id: str, states: dict, seen: set | None = None) -> list[str]:
    """Every model id in a widget's tree (boxes' children, Output widgets' displayed widgets)."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in states:
        return []
    seen.add(model_id)
    found = [model_id]
    state = states[model_id].get("state", {})
    children = [c.removeprefix("IPY_MODEL_") for c in state.get("children", []) if isinstance(c, str)]
    children += [o.get("data", {}).get(WIDGET_VIEW, {}).get("model_id", "") for o in state.get("outputs", [])]
    for child in children:
        found += _ids_in(child, states, seen)
    return found


def records_in(view_model_id: str, states: dict, records: dict) -> dict[str, dict]:
    """The recorded Output widgets inside one displayed widget, in display order."""
    return {i: records[i] for i in _ids_in(view_model_id, states) if i in records}


def render_output(shown: dict) -> str:
    """One stored output as HTML (what the page script builds too)."""
    if "png" in shown:
        return f'<img alt="drawing" src="data:image/png;base64,{shown["png"]}">'
    if "plotly" in shown:
        from site_outputs import plotly_html
        return plotly_html(shown["plotly"]).replace('afl-plotly"', 'afl-live-plotly"', 1)
    if "html" in shown:
        return f'<div>{shown["html"]}</div>'
    return f'<pre>{html.escape(shown.get("text", ""))}</pre>'


def _control_html(model_id: str, control: dict) -> str:
    labels, start, name = control["labels"], control["start"], control["model_name"]
    label = html.escape(control["description"] or control["name"])
    fixed = " disabled title=\"fixed on this page\"" if len(labels) == 1 else ""
    attrs = f'data-afl-model="{model_id}" data-afl-labels="{html.escape(json.dumps(labels))}"{fixed}'
    if name in SLIDER_MODELS:
        field = (f'<input type="range" min="0" max="{len(labels) - 1}" step="1" value="{start}" {attrs}>'
                 f'<output class="afl-live-value">{html.escape(labels[start])}</output>')
    elif name in SWITCH_MODELS:
        checked = " checked" if labels[start] == "on" else ""
        field = f'<input type="checkbox"{checked} {attrs}>'
    else:
        options = "".join(f'<option value="{i}"{" selected" if i == start else ""}>{html.escape(t)}</option>'
                          for i, t in enumerate(labels))
        field = f"<select {attrs}>{options}</select>"
        if name in TEXT_MODELS:
            field += ('<span class="afl-live-hint">examples: in the notebook you can type any text</span>')
    return f'<label class="afl-live-control">{label} {field}</label>'


def _layout(model_id: str, states: dict, controls: dict, areas: dict, seen: set) -> str:
    """The widget's tree as HTML: boxes as rows/columns, controls, output areas, display-only text."""
    if model_id in seen or model_id not in states:
        return ""
    seen.add(model_id)
    name, state = states[model_id].get("model_name", ""), states[model_id].get("state", {})
    if model_id in areas:
        return areas[model_id]
    if model_id in controls:
        return _control_html(model_id, {**controls[model_id], "model_name": name})
    if name in BOXES or name == "OutputModel":
        kids = [c.removeprefix("IPY_MODEL_") for c in state.get("children", []) if isinstance(c, str)]
        kids += [o.get("data", {}).get(WIDGET_VIEW, {}).get("model_id", "") for o in state.get("outputs", [])]
        inner = "".join(_layout(kid, states, controls, areas, seen) for kid in kids)
        return f'<div class="{BOXES.get(name, "afl-live-col")}">{inner}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<span>{state.get('value', '')}</span>"
    if name == "LabelModel":
        return f"<span>{html.escape(str(state.get('value', '')))}</span>"
    if "description" in state:  # a control outside any recorded drawing (a button): shown, inert
        return f'<label class="afl-live-control">{html.escape(str(state["description"]))} (notebook only)</label>'
    return ""


def _summary(record: dict) -> str:
    parts = [f"{c['description'] or c['name']} {len(c['labels'])} of {c['total']}" for c in record["controls"]
             if len(c["labels"]) < c["total"]]
    kept = f" (values kept: {', '.join(parts)})" if parts else ""
    return f"{len(record['states'])} precomputed states{kept}"


def live_widget(view_model_id: str, states: dict, records: dict, counter: list[int]) -> str | None:
    """The interactive HTML for one displayed widget, or None when nothing in it was precomputed."""
    found = {i: r for i, r in records_in(view_model_id, states, records).items() if not r.get("note")}
    if not found:
        return None
    controls, areas, data = {}, {}, []
    for output_id, record in found.items():
        for control in record["controls"]:
            controls.setdefault(control["model_id"], control)
        counter[0] += 1
        data_id = f"afl-live-data-{counter[0]}"
        start = ",".join(str(c["start"]) for c in record["controls"])
        first = "".join(render_output(record["pool"][i]) for i in record["states"][start])
        areas[output_id] = (f'<div class="afl-live-output" data-afl-data="{data_id}" data-afl-key="{start}" '
                            f'data-afl-output="{output_id}">'
                            f"{first}</div>")
        payload = {"controls": [c["model_id"] for c in record["controls"]], "states": record["states"],
                   "start": [c["start"] for c in record["controls"]], "pool": record["pool"]}
        data.append(f'<script type="application/json" id="{data_id}">'
                    f'{json.dumps(payload).replace("</", "<" + chr(92) + "/")}</script>')
    summary = "; ".join(_summary(r) for r in found.values())
    note = (f'<div class="afl-live-note">Interactive without a kernel: {html.escape(summary)}. '
            "In Jupyter or Colab every value works.</div>")
    body = _layout(view_model_id, states, controls, areas, set())
    # controls displayed apart from the drawing (display(slider); display(out)) are repeated here
    tree = set(_ids_in(view_model_id, states))
    apart = "".join(_control_html(i, {**c, "model_name": c["kind"] + "Model"}) for i, c in controls.items()
                    if i not in tree)
    body = (f'<div class="afl-live-row">{apart}</div>' if apart else "") + body
    return f'<div class="afl-live">{note}{body}{"".join(data)}</div>'


SHOWN_WITH_DRAWING = ("Interactive without a kernel with the drawing it moves, below: its controls are "
                      "repeated there, with the precomputed states.")


def controls_shown_with_drawing(view_model_id: str, states: dict, records: dict) -> bool:
    """True for a widget of controls only, each of which moves a precomputed drawing shown apart."""
    used = {c["model_id"] for r in records.values() if not r.get("note") for c in r["controls"]}
    ids = _ids_in(view_model_id, states)
    mine = [i for i in ids if i in used]
    return bool(mine) and not records_in(view_model_id, states, records)


NOT_REPLAYED = ("its drawing is not made through interactive_output or interact, the calls the site build "
                "records and replays")


def why_static(view_model_id: str, states: dict, records: dict) -> str:
    """Why a widget with controls is not interactive on the page."""
    found = records_in(view_model_id, states, records)
    notes = [r["note"] for r in found.values() if r.get("note")]
    return "; ".join(dict.fromkeys(notes)) if found else NOT_REPLAYED


def check_page_budget(sizes: dict[str, int], limit: int = MAX_PAGE_BYTES) -> None:
    """Fail the build, naming every page past the limit and its size."""
    over = {page: size for page, size in sizes.items() if size > limit}
    if over:
        listed = ", ".join(f"{page} ({size / 2**20:.1f} MB)" for page, size in sorted(over.items()))
        raise SystemExit(f"pages over the {limit / 2**20:.0f} MB budget: {listed}. Lower --max-states "
                         "or draw smaller figures in those widgets.")
