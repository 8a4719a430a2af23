"""The site build's pure parts: widgets -> first drawing + note, plotly -> local div, pages, search.

The whole build, in a browser, is tests/browser/test_site.py (`make test-site`).
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import site_outputs  # noqa: E402
import site_pages  # noqa: E402

PNG = {"output_type": "display_data", "metadata": {},
       "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 1000x360 with 2 Axes>"}}


def _model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def _explorer_states():
    """What nbclient saves for explore_attention-like widgets: VBox(HBox(slider, checkbox),
    HBox(dropdown), Output(first drawing))."""
    return {
        "root": _model("VBoxModel", children=["IPY_MODEL_row1", "IPY_MODEL_row2", "IPY_MODEL_out"]),
        "row1": _model("HBoxModel", children=["IPY_MODEL_tau", "IPY_MODEL_scaled"]),
        "row2": _model("HBoxModel", children=["IPY_MODEL_query"]),
        "tau": _model("FloatLogSliderModel", description="temperature", value=0.5),
        "scaled": _model("CheckboxModel", description="scale by 1/√d", value=True),
        "query": _model("DropdownModel", description="query", index=1, _options_labels=["0: the", "1: cat"]),
        "out": _model("OutputModel", outputs=[PNG]),
        "bar": _model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_progress", "IPY_MODEL_right"]),
        "left": _model("HTMLModel", value="train: 100%"),
        "progress": _model("FloatProgressModel", value=25.0, min=5.0, max=25.0),  # full: 20 of 20
        "right": _model("HTMLModel", value="20/20 [00:01&lt;00:00]"),
    }


def _view(model_id):
    return {"output_type": "execute_result", "execution_count": 1, "metadata": {},
            "data": {site_outputs.WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0},
                     "text/plain": "VBox(children=(...))"}}


def test_an_explorer_becomes_a_note_naming_its_controls_then_its_first_drawing():
    shown = site_outputs.static_widget_outputs(_view("root"), _explorer_states())
    assert len(shown) == 2
    note = shown[0]["data"]["text/html"]
    assert 'class="afl-widget-note"' in note and "live kernel" in note
    assert "temperature = 0.5" in note and "scale by 1/√d = True" in note and "query = 1: cat" in note
    assert shown[1] == PNG  # the Output widget's capture, as it was


def test_a_progress_bar_becomes_one_static_row_without_a_note():
    states = _explorer_states()
    shown = site_outputs.static_widget_outputs(_view("bar"), states)
    assert len(shown) == 1
    row = shown[0]["data"]["text/html"]
    assert "afl-widget-note" not in row
    assert row.startswith('<div class="afl-widget-row">') and '<progress value="20.0" max="20.0">' in row
    assert row.index("train: 100%") < row.index("<progress") < row.index("20/20")


def test_a_widget_whose_state_was_not_saved_says_so():
    shown = site_outputs.static_widget_outputs(_view("missing"), {})
    assert len(shown) == 1 and "VBox(children=(...))" in shown[0]["data"]["text/html"]
    assert "needs a live kernel" in shown[0]["data"]["text/html"]


def test_other_outputs_pass_through():
    assert site_outputs.static_widget_outputs(PNG, {}) == [PNG]


def _notebook(outputs, states=None):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = outputs
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · Title"), cell]
    if states is not None:
        nb.metadata["widgets"] = {site_outputs.WIDGET_STATE: {"state": states, "version_major": 2}}
    return nb


def test_make_static_rewrites_widgets_and_plotly_and_drops_the_widget_state():
    figure = {"data": [{"type": "heatmap", "z": [[0.2, 0.8]], "text": [["</script><b>x", "y"]]}],
              "layout": {"title": {"text": "hover"}}}
    plotly = {"output_type": "display_data", "metadata": {}, "data": {site_outputs.PLOTLY: figure}}
    nb = _notebook([_view("root"), plotly], _explorer_states())
    counts = site_outputs.make_static(nb)
    assert counts == {"widgets": 1, "plotly": 1, "frames": 0, "live": 0}
    outputs = nb.cells[1]["outputs"]
    assert [list(o["data"]) for o in outputs[:2]] == [["text/html"], list(PNG["data"])]
    html = outputs[2]["data"]["text/html"]
    assert 'class="plotly-graph-div afl-plotly"' in html and "Plotly.newPlot(" in html
    assert "</script><b>" not in html  # the label cannot close the script early
    spec = html.split("const spec = ", 1)[1].split(";\nPlotly.newPlot", 1)[0]
    assert json.loads(spec)["data"] == figure["data"]
    assert "widgets" not in nb.metadata


def test_inline_tensorboard_becomes_a_note_and_the_other_outputs_stay():
    """%tensorboard's iframe points at the kernel machine's port: on the site it is a note instead."""
    frame = ('\n      <iframe id="tensorboard-frame-1f2e3d4c5b6a7988" width="100%" height="800" frameborder="0">'
             '\n      </iframe>\n      <script>\n        (function() {\n          const frame = '
             'document.getElementById("tensorboard-frame-1f2e3d4c5b6a7988");\n          const url = '
             'new URL("/", window.location);\n          const port = 6006;\n')
    board = {"output_type": "display_data", "metadata": {},
             "data": {"text/html": frame.splitlines(keepends=True), "text/plain": "<IPython.core.display.HTML object>"}}
    printed = {"output_type": "stream", "name": "stdout", "text": "train/loss: 20 points in the event file\n"}
    table = {"output_type": "display_data", "metadata": {}, "data": {"text/html": "<table><tr><td>1</td></tr></table>"}}
    nb = _notebook([printed, board, table, PNG])
    assert site_outputs.make_static(nb) == {"widgets": 0, "plotly": 0, "frames": 1, "live": 0}
    outputs = nb.cells[1]["outputs"]
    assert outputs[0] == printed and outputs[2] == table and outputs[3] == PNG
    note = outputs[1]["data"]["text/html"]
    assert list(outputs[1]["data"]) == ["text/html"]
    assert "<iframe" not in note and "localhost" not in note and "6006" not in note
    assert "TensorBoard" in note and "Jupyter or Colab" in note


def test_plotly_html_names_what_is_wrong():
    with pytest.raises(ValueError, match="'data' key"):
        site_outputs.plotly_html({"layout": {}})


def test_lessons_come_from_title_cells_and_readme_rows():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        "# 42 · A new lesson\n\n**What you will learn**\n\n- one thing\n- another\n\n**Prerequisites:** 01")]
    lesson = site_pages.lesson_from_notebook("42_a_new_lesson", nb)
    assert (lesson.number, lesson.title, lesson.page) == ("42", "A new lesson", "42_a_new_lesson.html")
    assert lesson.teaches == "one thing; another"
    nb.cells[0].source = "A lesson without a title"
    with pytest.raises(ValueError, match="# NN · Title"):
        site_pages.lesson_from_notebook("43_x", nb)
    rows = site_pages.readme_rows((ROOT / "README.md").read_text())
    for path in sorted((ROOT / "notebooks").glob("0[0-8]_*.ipynb")):  # the rows the README has now
        assert path.name[:2] in rows, path.name
    teaches, minutes = rows["01"]
    assert "softmax" in teaches and minutes.count("/") == 2


def test_curriculum_table_links_every_lesson_and_the_landing_page_holds_it():
    lessons = [site_pages.Lesson("00", "Welcome", "00_welcome", "a `first` widget", "0.2 / 0.2 / 0.2"),
               site_pages.Lesson("01", "Average", "01_average", "scores", "0.3 / 0.3 / 0.3")]
    table = site_pages.curriculum_table(lessons)
    assert table.count("<tr>") == 3
    assert '<a href="00_welcome.html">Welcome</a>' in table and "<code>first</code>" in table
    body = site_pages.landing_body("# Hi\n\n{{ curriculum }}\n\nafter", lessons)
    assert body.index("<h1>Hi</h1>") < body.index("afl-curriculum") < body.index("after")
    with pytest.raises(ValueError, match="curriculum"):
        site_pages.landing_body("# no table", lessons)
    nav = site_pages.nav_bar(lessons, lessons[1])
    assert 'href="00_welcome.html"' in nav and "afl-next" not in nav and 'action="search.html"' in nav


def test_links_between_lessons_and_the_colab_badge_stay_in_the_site():
    page = ('<a href="01_average.ipynb#sec-2">x</a> <a href="../notebooks/00_welcome.ipynb">y</a> '
            '<a href="other.ipynb">z</a> <img src="https://colab.research.google.com/assets/colab-badge.svg">')
    out = site_pages.localize_badges(site_pages.rewrite_notebook_links(page, {"00_welcome", "01_average"}))
    assert 'href="01_average.html#sec-2"' in out and 'href="00_welcome.html"' in out
    assert 'href="other.ipynb"' in out  # not a lesson: left alone (the site test then reports it)
    assert 'src="_static/colab-badge.svg"' in out


def test_search_entries_follow_headings_with_their_anchors():
    page = ("<main><h1 id='t'>01 · Title¶</h1><p>intro words</p><h2 id='Temperature'>Temperature¶</h2>"
            "<p>softmax and tau</p><ul><li><p>in a list</p></li></ul><pre>code_here()</pre></main>")
    entries = site_pages.search_entries(page, "01.html", "01 · Title")
    assert [e["url"] for e in entries] == ["01.html#t", "01.html#Temperature"]
    assert entries[1]["title"] == "01 · Title › Temperature"
    assert entries[1]["text"] == "softmax and tau in a list code_here()"
    assert site_pages.search_index_js(entries).startswith("window.AFL_SEARCH = [")


def test_channel_waits_come_back_in_slices_and_still_time_out():
    """build_site's guard against a missed zmq wake-up: a wait without a deadline polls again every
    slice (a message that arrived unannounced is picked up), and a wait with one still ends in Empty."""
    import asyncio
    from queue import Empty

    import build_site

    calls = []

    async def never_wakes(timeout=None):  # like a poll that missed its wake-up: Empty after `timeout`
        calls.append(timeout)
        if len(calls) < 3:
            raise Empty
        return {"msg_type": "status"}

    sliced = build_site._sliced(never_wakes)
    assert asyncio.run(sliced(timeout=None)) == {"msg_type": "status"}
    assert calls[:2] == [build_site.POLL_SLICE_S] * 2
    calls.clear()

    async def always_empty(timeout=None):
        calls.append(timeout)
        await asyncio.sleep(timeout)
        raise Empty

    build_site.POLL_SLICE_S, saved = 0.01, build_site.POLL_SLICE_S
    try:
        with pytest.raises(Empty):
            asyncio.run(build_site._sliced(always_empty)(timeout=0.05))
    finally:
        build_site.POLL_SLICE_S = saved
    assert len(calls) >= 3 and all(c <= 0.01 for c in calls)


def test_the_site_tests_cache_reuses_an_execution_only_of_the_same_notebook_and_lab(tmp_path):
    """Planted bug: --cache keyed on the notebook alone (as --reuse is), so a change to the lab left
    `make test-site` checking pages executed with the old lab."""
    import build_site

    source = tmp_path / "01_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), source)
    executed = nbformat.v4.new_notebook()
    executed.metadata["attnflex_site"] = {"profile": "smoke", "source_sha256": build_site.source_hash(source),
                                          "max_states": 4, "lab_sha256": "lab-then"}
    target = tmp_path / "executed.ipynb"
    nbformat.write(executed, target)
    assert build_site.is_current(source, target, "smoke", 4)                      # --reuse
    assert build_site.is_current(source, target, "smoke", 4, lab="lab-then")      # --cache, same lab
    assert not build_site.is_current(source, target, "smoke", 4, lab="lab-now")   # the lab changed
    assert not build_site.is_current(source, target, "cpu", 4, lab="lab-then")
    assert not build_site.is_current(source, tmp_path / "missing.ipynb", "smoke", 4)
    assert len(build_site.lab_hash()) == 64 and build_site.lab_hash() == build_site.lab_hash()
