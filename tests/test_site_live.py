"""Widgets made interactive on the static site: the grid of precomputed states (kernel side,
attnflex_lab/viz/site_states.py), their HTML (scripts/site_live.py) and the page budget.

The pages in a browser, each widget moved: tests/browser/test_site.py (`make test-site`).
"""

import itertools
import json
import sys
from pathlib import Path

import ipywidgets
import nbformat
import pytest
import torch
from ipywidgets.widgets import interaction

from attnflex_lab.viz import site_states

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import site_live  # noqa: E402
import site_outputs  # noqa: E402
import site_pages  # noqa: E402


@pytest.mark.parametrize("sizes, budget", [([51, 2, 6, 3], 50), ([51, 2, 6, 3], 8), ([2, 3], 50),
                                           ([11, 2], 8), ([7], 50), ([1, 40], 5), ([4, 4, 4, 4, 4, 4], 50)])
def test_grid_counts_fit_the_budget_and_give_every_control_a_second_value_first(sizes, budget):
    counts = site_states.grid_counts(sizes, budget)
    product = 1
    for count in counts:
        product *= count
    assert product <= budget and all(1 <= c <= n for c, n in zip(counts, sizes, strict=True))
    if len(list(itertools.product(*map(range, sizes)))) <= budget:  # everything fits: all of it
        assert counts == sizes
    # a control holds a third value only where another's second value could not fit even without it
    for a, b in itertools.permutations(range(len(sizes)), 2):
        if counts[a] >= 3 and counts[b] == 1 < sizes[b]:
            assert product // counts[a] * 2 * 2 > budget, (sizes, budget, counts)
    # nothing more fits: growing any control that can still grow passes the budget
    for i, (count, size) in enumerate(zip(counts, sizes, strict=True)):
        if count < size:
            assert product // count * (count + 1) > budget, (sizes, budget, counts, i)


def test_grid_counts_are_exhaustive_when_the_product_fits_and_prefer_the_first_control():
    assert site_states.grid_counts([2, 3, 4], 50) == [2, 3, 4]
    assert site_states.grid_counts([51, 2, 6, 3], 8) == [2, 2, 2, 1]  # the main (first) control moves
    with pytest.raises(ValueError, match="max_states"):
        site_states.grid_counts([3], 0)


@pytest.mark.parametrize("size, keep, start", [(51, 5, 17), (51, 2, 50), (10, 10, 3), (6, 1, 4), (3, 2, 1)])
def test_subsample_keeps_the_ends_and_the_starting_value(size, keep, start):
    chosen = site_states.subsample(size, keep, start)
    assert chosen == sorted(set(chosen)) and start in chosen and len(chosen) == keep
    assert all(0 <= i < size for i in chosen)
    if keep >= 3:
        assert chosen[0] == 0 and chosen[-1] == size - 1


def test_text_examples_start_with_the_typed_text_and_prefer_declared_ones():
    examples = site_states.text_examples("Tuesday, March 3, 1987")
    assert examples[0] == "Tuesday, March 3, 1987" and len(set(examples)) == len(examples) >= 4
    assert "Tuesday, March 6, 4210" in examples  # digits rotated: still date-shaped
    assert site_states.text_examples("31415", declared=["12345", "31415"]) == ["31415", "12345"]


def test_control_choices_list_every_value_a_control_can_take():
    log = site_states.control_choices(ipywidgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.5))
    assert log["values"] == pytest.approx([0.1, 10 ** -0.5, 1.0, 10 ** 0.5, 10.0]) and log["start"] == 2
    ints = site_states.control_choices(ipywidgets.IntSlider(value=3, min=2, max=6, step=2))
    # 3 is off the steps: it replaces its nearest step, so the first drawing's state is stored exactly
    assert ints["values"] == [3, 4, 6] and ints["labels"] == ["3", "4", "6"] and ints["start"] == 0
    menu = site_states.control_choices(ipywidgets.Dropdown(options=[("a", 10), ("b", 20)], value=20))
    assert (menu["values"], menu["labels"], menu["start"]) == ([10, 20], ["a", "b"], 1)
    box = site_states.control_choices(ipywidgets.Checkbox(value=True))
    assert (box["values"], box["start"]) == ([False, True], 1)
    with pytest.raises(TypeError, match="Button"):
        site_states.control_choices(ipywidgets.Button())


def _printer(**values):
    print(json.dumps(values, sort_keys=True))


def test_precompute_stores_each_state_under_its_controls_positions():
    controls = {"h": ipywidgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25),
                "mode": ipywidgets.Dropdown(options=["x", "y", "z"], value="y"),
                "on": ipywidgets.Checkbox(value=False)}
    record = site_states.precompute(lambda h, mode, on: _printer(h=h, mode=mode, on=on), controls, max_states=18)
    assert record["note"] is None and len(record["states"]) == 18
    kept = {c["name"]: c for c in record["controls"]}
    assert kept["mode"]["labels"] == ["x", "y", "z"] and kept["on"]["labels"] == ["off", "on"]
    for key, refs in record["states"].items():
        position = dict(zip(kept, map(int, key.split(",")), strict=True))
        printed = json.loads(record["pool"][refs[0]]["text"])
        assert printed["mode"] == kept["mode"]["labels"][position["mode"]]
        assert printed["on"] == (kept["on"]["labels"][position["on"]] == "on")
        assert f"{printed['h']:.4g}" == kept["h"]["labels"][position["h"]]
    start = ",".join(str(c["start"]) for c in record["controls"])
    assert json.loads(record["pool"][record["states"][start][0]]["text"]) == {"h": 0.5, "mode": "y", "on": False}


def test_precompute_leaves_the_random_state_as_it_was_and_starts_every_state_from_it():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    record = site_states.precompute(lambda k: print(torch.rand(1).item()),
                                    {"k": ipywidgets.IntSlider(value=0, min=0, max=3)})
    assert torch.equal(torch.get_rng_state(), before)
    assert len({record["pool"][refs[0]]["text"] for refs in record["states"].values()}) == 1


def test_precompute_shrinks_the_grid_to_the_byte_budget_or_says_why():
    slider = {"i": ipywidgets.IntSlider(value=0, min=0, max=49)}
    record = site_states.precompute(lambda i: print(f"{i:4d}" * 250), slider, max_bytes=10_000)
    assert record["note"] is None and 2 <= len(record["states"]) <= 9
    assert sum(len(json.dumps(p)) for p in record["pool"]) <= 10_000
    huge = site_states.precompute(lambda i: print("x" * 20_000), slider, max_bytes=10_000)
    assert huge["states"] == {} and "one drawing takes" in huge["note"]
    button = site_states.precompute(print, {"go": ipywidgets.Button()})
    assert "Button" in button["note"]


def _burn(cpu_seconds: float) -> None:
    """Spend this much CPU time (a drawing's cost, whatever the machine's load)."""
    import time

    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass


def test_precompute_shrinks_the_grid_to_the_cpu_time_budget_or_says_why():
    """Planted bugs: the grid sized by max_states alone (a dear widget computes all 50 states), the
    budget read from the wall clock, or a widget with no time left still precomputed."""
    slider = {"i": ipywidgets.IntSlider(value=0, min=0, max=49)}
    record = site_states.precompute(lambda i: (_burn(0.02), print(i)), slider, max_seconds=0.1)
    assert record["note"] is None and 2 <= len(record["states"]) <= 5, len(record["states"])
    dear = site_states.precompute(lambda i: (_burn(0.06), print(i)), slider, max_seconds=0.1)
    assert dear["states"] == {} and "of CPU" in dear["note"]
    spent = site_states.precompute(lambda i: print(i), slider, max_seconds=0.0)
    assert spent["states"] == {} and "spent on the widgets above it" in spent["note"]
    import time

    sleepy = site_states.precompute(lambda i: (time.sleep(0.02), print(i)), slider, max_seconds=0.05, max_states=8)
    assert len(sleepy["states"]) == 8  # waiting costs no CPU: a loaded machine keeps the same grid


def test_install_records_interactive_output_and_writes_the_states_after_the_cell(tmp_path, monkeypatch):
    for owner in (interaction, ipywidgets, ipywidgets.widgets):  # undone after the test
        monkeypatch.setattr(owner, "interactive_output", interaction.interactive_output)
    monkeypatch.setattr(interaction.interactive, "__init__", interaction.interactive.__init__)
    monkeypatch.setattr(ipywidgets.Widget, "_repr_mimebundle_", ipywidgets.Widget._repr_mimebundle_)

    class Shell:
        class events:
            registered = []

            @classmethod
            def register(cls, name, hook):
                cls.registered.append((name, hook))

    recorder = site_states.install(tmp_path, max_states=4, shell=Shell)
    slider = ipywidgets.IntSlider(value=1, min=0, max=9)
    output = ipywidgets.interactive_output(lambda n: print(n * 2), {"n": slider})
    checked_only = ipywidgets.interactive_output(lambda n: print(n), {"n": slider})  # built, never shown
    ipywidgets.VBox([slider, ipywidgets.HBox([output])])._repr_mimebundle_()     # what display() calls
    assert [name for name, _ in Shell.events.registered] == ["post_run_cell"]
    Shell.events.registered[0][1]()
    assert not (tmp_path / f"{checked_only.model_id}.json").exists()
    record = json.loads((tmp_path / f"{output.model_id}.json").read_text())
    assert len(record["states"]) == 4 and record["controls"][0]["model_id"] == slider.model_id
    assert [entry[0] for entry in recorder.pending] == [checked_only.model_id]  # until it is shown
    # the page's budget: what one widget spends, later ones no longer have
    assert recorder.page_left < site_states.PAGE_SECONDS
    recorder.page_left = 0.0
    late = ipywidgets.interactive_output(lambda n: print(n), {"n": slider})
    late_slider = ipywidgets.VBox([slider, late])
    late_slider._repr_mimebundle_()
    Shell.events.registered[0][1]()
    assert "spent on the widgets above it" in json.loads((tmp_path / f"{late.model_id}.json").read_text())["note"]


def _model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def _record():
    controls = [{"kind": "FloatSlider", "description": "temperature", "name": "t", "labels": ["0.1", "1", "10"],
                 "start": 1, "total": 51, "model_id": "tau", "indices": [0, 25, 50]},
                {"kind": "Checkbox", "description": "scaled", "name": "s", "labels": ["off", "on"],
                 "start": 1, "total": 2, "model_id": "box", "indices": [0, 1]}]
    states = {f"{i},{j}": [i * 2 + j] for i in range(3) for j in range(2)}
    pool = [{"png": f"PNG{n}"} for n in range(5)] + [{"text": "</script> done"}]
    return {"controls": controls, "states": states, "pool": pool, "note": None}


def _widget_states():
    return {"root": _model("VBoxModel", children=["IPY_MODEL_row", "IPY_MODEL_out"]),
            "row": _model("HBoxModel", children=["IPY_MODEL_tau", "IPY_MODEL_box"]),
            "tau": _model("FloatSliderModel", description="temperature", value=1.0),
            "box": _model("CheckboxModel", description="scaled", value=True),
            "out": _model("OutputModel", outputs=[])}


def test_a_precomputed_widget_becomes_html_controls_its_first_state_and_its_states():
    page = site_live.live_widget("root", _widget_states(), {"out": _record()}, [0])
    assert page.index('type="range"') < page.index('type="checkbox"') < page.index("afl-live-output")
    assert 'max="2"' in page and 'value="1"' in page and ">1</output>" in page and " checked " in page
    assert 'data-afl-key="1,1"' in page and 'src="data:image/png;base64,PNG3"' in page  # state (1, 1)
    payload = page.split('type="application/json" id="afl-live-data-1">')[1].split("</script>")[0]
    data = json.loads(payload)
    assert data["controls"] == ["tau", "box"] and data["states"]["2,1"] == [5]
    assert "</script> done" not in page and "temperature 3 of 51" in page


def test_a_widget_that_could_not_be_precomputed_stays_a_note_that_says_why():
    record = {**_record(), "states": {}, "pool": [], "note": "precomputing its states took over 60 s"}
    assert site_live.live_widget("root", _widget_states(), {"out": record}, [0]) is None
    view = {"output_type": "display_data", "metadata": {},
            "data": {site_outputs.WIDGET_VIEW: {"model_id": "root"}, "text/plain": "VBox()"}}
    note = site_outputs.static_widget_outputs(view, _widget_states(), {"out": record})[0]["data"]["text/html"]
    assert "Not precomputed for this page: precomputing its states took over 60 s" in note
    unrecorded = site_outputs.static_widget_outputs(view, _widget_states(), {})[0]["data"]["text/html"]
    assert "interactive_output" in unrecorded


def test_the_page_budget_fails_the_build_naming_the_pages_past_it():
    site_live.check_page_budget({"a.html": 8 << 20, "b.html": 10})
    with pytest.raises(SystemExit, match=r"c\.html \(8\.0 MB\)") as failure:
        site_live.check_page_budget({"a.html": 100, "c.html": (8 << 20) + 1})
    assert "a.html" not in str(failure.value)


def test_controls_displayed_apart_from_their_drawing_are_repeated_with_it():
    """display(controls); display(output): the output's view gets the controls, the controls' view a pointer."""
    states = _widget_states()
    page = site_live.live_widget("out", states, {"out": _record()}, [0])
    assert page.index('type="range"') < page.index('type="checkbox"') < page.index("afl-live-output")
    view = {"output_type": "display_data", "metadata": {},
            "data": {site_outputs.WIDGET_VIEW: {"model_id": "row"}, "text/plain": "HBox()"}}
    shown = site_outputs.static_widget_outputs(view, states, {"out": _record()})
    assert len(shown) == 1 and site_live.SHOWN_WITH_DRAWING in shown[0]["data"]["text/html"]


def test_rendering_fails_loudly_on_a_page_past_the_budget(tmp_path):
    """build_site.render_lessons measures every page it writes and stops the build past the budget."""
    import build_site

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · Title\n\n" + "words " * 400)]
    nbformat.write(nb, tmp_path / "01_title.ipynb")
    lesson = site_pages.lesson_from_notebook("01_title", nb)
    (tmp_path / "out").mkdir()
    build_site.render_lessons([tmp_path / "01_title.ipynb"], [lesson], tmp_path / "out", "smoke",
                              max_page_bytes=10 << 20)
    with pytest.raises(SystemExit, match=r"01_title\.html"):
        build_site.render_lessons([tmp_path / "01_title.ipynb"], [lesson], tmp_path / "out", "smoke",
                                  max_page_bytes=2000)
