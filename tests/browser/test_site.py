"""The static site, built from smoke executions of every lesson, read in Chromium.

`make test-site` runs this (CI's second step): executing every notebook again takes minutes on two
cores, so `make test` leaves it out by the `site` marker. ATTNFLEX_SITE_DIR=path checks a site
already built (e.g. `make site`) instead of building one.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .lab import REPO, screenshot

pytestmark = pytest.mark.site

LESSONS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIGURE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> tuple[Path, Path]:
    """(site folder, executed-notebooks folder)."""
    given = os.environ.get("ATTNFLEX_SITE_DIR")
    if given:
        site = Path(given).resolve()
        return site, site.parent / "executed" / ("cpu" if site.name == "site" else site.name.removeprefix("site-"))
    root = tmp_path_factory.mktemp("site")
    # Executions are kept between runs in _build/ and reused where neither the notebook nor the lab
    # changed (--cache); a fresh clone (CI) executes every lesson.
    executed = Path(os.environ.get("ATTNFLEX_SITE_TEST_CACHE", REPO / "_build" / "executed" / "smoke-site-test"))
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_site.py"), "--profile", "smoke", "--cache",
         "--out", str(root / "site"), "--executed", str(executed)],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, f"build_site.py failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    print(f"smoke site built in {time.monotonic() - start:.0f} s:\n{result.stdout}")
    return root / "site", executed


@pytest.fixture(scope="module")
def site_url(built_site):
    handler = functools.partial(QuietHandler, directory=str(built_site[0]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def site_page(chromium):
    """One browser page for every test here (a context per test cost more than the checks)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and problems.append(f"HTTP {resp.status}: {resp.url}"))
    page.afl_problems = problems
    yield page
    context.close()


@pytest.fixture
def page(site_page):
    """The module's page, its list of problems emptied for this test."""
    site_page.afl_problems.clear()
    return site_page


def watch_problems(page) -> list[str]:
    """Console errors, uncaught exceptions and failed requests, as they happen (since this test began)."""
    return page.afl_problems


def settled(page, problems: list[str]) -> list[str]:
    """The problems once every request of the page has ended (pages load with "load", not "networkidle":
    by the time the checks are done the network is usually idle already, so this costs nothing)."""
    page.wait_for_load_state("networkidle")
    return problems


@functools.cache
def executed_notebook(path: Path):
    return nbformat.read(path, as_version=4)


def expected_figures(executed: Path) -> tuple[int, int, bool]:
    """(images, plotly figures) the lesson drew, counted in its executed notebook, widgets included,
    and whether its text has formulas."""
    nb = executed_notebook(executed)
    has_math = any("$" in cell.source for cell in nb.cells if cell.cell_type == "markdown")
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model in state.get("state", {}).values():
        if model.get("model_name") == "OutputModel":
            outputs += model["state"].get("outputs", [])
    images = sum(any(m in o.get("data", {}) for m in FIGURE_MIMES) for o in outputs)
    plotly = sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
    return images, plotly, has_math


@pytest.mark.parametrize("stem", LESSONS)
def test_lesson_page_loads_clean_and_shows_its_figures(page, site_url, built_site, stem):
    problems = watch_problems(page)
    page.goto(site_url + f"{stem}.html", wait_until="load")
    images, plotly, has_math = expected_figures(built_site[1] / f"{stem}.ipynb")
    shown_images = page.locator(".jp-OutputArea-output img, .jp-OutputArea-output svg:not(.main-svg *)")
    drawn_plotly = page.locator(".afl-plotly .main-svg")
    if plotly:
        drawn_plotly.first.wait_for(timeout=30_000)  # plotly.js drew it: the page's script ran
    if has_math:  # MathJax (served from _static/) typesets the formulas after the page loads
        page.locator(".MathJax_CHTML").first.wait_for(timeout=30_000)
    if settled(page, problems):
        raise AssertionError(f"{stem}: {problems} (screenshot {screenshot(page, f'site_{stem[:2]}')})")
    assert page.locator("h1").first.inner_text().startswith(stem[:2])
    assert shown_images.count() >= images, (stem, shown_images.count(), images)
    assert page.locator(".afl-plotly").count() == plotly
    assert page.locator(".afl-plotly .main-svg").count() >= plotly
    if images + plotly:
        assert shown_images.count() + drawn_plotly.count() > 0
    move_every_live_widget(page, built_site[1] / f"{stem}.states", stem)
    # Every widget that stays static says why, and is followed by its first drawing.
    notes = page.locator(".afl-widget-note")
    for i in range(notes.count()):
        area = notes.nth(i).locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-child')][1]")
        following = area.locator("xpath=following-sibling::*[1]//img")
        assert following.count() >= 1, f"{stem}: widget note {i} has no drawing after it"
        text = notes.nth(i).inner_text()
        assert "live kernel" not in text or "Not precomputed for this page:" in text, (stem, text)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def displayed_trees(executed: Path) -> list[dict[str, str]]:
    """Per widget the lesson displayed: every model in its tree (model id -> model name)."""
    nb = executed_notebook(executed)
    states = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})

    def tree(model_id: str) -> list[str]:
        state = states.get(model_id, {}).get("state", {})
        kids = [c.removeprefix("IPY_MODEL_") for c in state.get("children", []) if isinstance(c, str)]
        kids += [o.get("data", {}).get(WIDGET_VIEW, {}).get("model_id", "") for o in state.get("outputs", [])]
        return [model_id] + [i for kid in kids if kid in states for i in tree(kid)]

    views = [o["data"][WIDGET_VIEW]["model_id"] for cell in nb.cells if cell.cell_type == "code"
             for o in cell.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
    return [{i: states.get(i, {}).get("model_name", "") for i in tree(view)} for view in views]


CONTROLS = ("SliderModel", "DropdownModel", "RadioButtonsModel", "ToggleButtonsModel", "SelectModel",
            "CheckboxModel", "TextModel")  # every kind of control the site can offer (viz/site_states.py)


def expected_widgets(executed: Path, recorded: dict) -> dict[str, int]:
    """What the page must show, counted from the executed notebook and the precomputed records:
    interactive boxes (a displayed tree holding a precomputed Output), trees of controls that move a
    drawing displayed apart from them (lesson 08), and drawing widgets (an Output and a control in one
    tree) that are neither and so must have a record saying why not."""
    live = {i for i, r in recorded.items() if not r["note"]}
    moved = {c["model_id"] for i in live for c in recorded[i]["controls"]}
    counts = {"live": 0, "apart": 0, "unexplained": 0}
    for tree in displayed_trees(executed):
        if live & tree.keys():
            counts["live"] += 1
        elif "OutputModel" not in tree.values() and moved & tree.keys():
            counts["apart"] += 1
        elif "OutputModel" in tree.values() and any(n.endswith(CONTROLS) for n in tree.values()):
            noted = [i for i in tree if i in recorded]
            counts["unexplained"] += not noted
    return counts


def _shown(area) -> list[str]:
    """What an output area shows: each drawing's PNG (base64) or each text block, in order."""
    return area.evaluate("""a => Array.from(a.children).map(c => c.tagName === "IMG" ?
        c.src.replace("data:image/png;base64,", "") : c.tagName === "PRE" ? c.textContent : "other")""")


def _expected(record: dict, key: str) -> list[str]:
    stored = [record["pool"][i] for i in record["states"][key]]
    return [shown.get("png", shown.get("text", "other")) for shown in stored]


def _move(box, control: dict, to: int) -> str:
    """Move one HTML control to the value at index ``to`` as a reader would; return what it shows."""
    element = box.locator(f'[data-afl-model="{control["model_id"]}"]')
    tag, kind = element.evaluate("e => [e.tagName, e.type]")
    if tag == "SELECT":
        element.select_option(index=to)
        return element.evaluate("e => e.options[e.selectedIndex].text")
    if kind == "checkbox":
        element.click()
        return control["labels"][to]
    element.focus()  # a range input: the keyboard steps it, firing input events like a drag
    element.press("End" if to == len(control["labels"]) - 1 else "Home")
    return element.locator("xpath=following-sibling::output[1]").inner_text()


def move_every_live_widget(page, states_folder: Path, stem: str) -> None:
    """Each interactive widget: move one of its controls to another stored value; the area must show
    that state's drawing (as the build stored it for those control values) and the control its value."""
    boxes = page.locator(".afl-live")
    recorded = {p.stem: json.loads(p.read_text()) for p in states_folder.glob("*.json")}
    expected = expected_widgets(states_folder.with_suffix(".ipynb"), recorded)
    # every widget that draws is interactive here, or its precomputation said why not: exactly
    assert expected["unexplained"] == 0, f"{stem}: {expected['unexplained']} drawing widget(s) never recorded"
    assert boxes.count() == expected["live"], (stem, boxes.count(), expected)
    apart = page.locator(".afl-live-note", has_text="with the drawing it moves")
    assert apart.count() == expected["apart"], (stem, apart.count(), expected)
    for b in range(boxes.count()):
        box = boxes.nth(b)
        area = box.locator(".afl-live-output").first
        record = recorded[area.get_attribute("data-afl-output")]
        start = [c["start"] for c in record["controls"]]
        assert _shown(area) == _expected(record, ",".join(map(str, start))), f"{stem}: widget {b} starts wrong"
        movable = [i for i, c in enumerate(record["controls"]) if len(c["labels"]) > 1]
        assert movable, f"{stem}: widget {b} has no control with a second value"
        changed = False
        for which in movable[:2]:
            before = _shown(area)
            control = record["controls"][which]
            to = len(control["labels"]) - 1 if start[which] != len(control["labels"]) - 1 else 0
            shown_value = _move(box, control, to)
            start[which] = to
            key = ",".join(map(str, start))
            page.wait_for_function("([a, k]) => a.dataset.aflKey === k", arg=[area.element_handle(), key],
                                   timeout=10_000)  # the page script swapped in the state for that key
            # (a menu shows runs of spaces as one)
            assert shown_value.split() == control["labels"][to].split(), (stem, control["name"], shown_value)
            assert _shown(area) == _expected(record, key), f"{stem}: widget {b} shows the wrong state for {key}"
            changed |= _shown(area) != before
        assert changed, f"{stem}: moving widget {b}'s controls never changed its drawing"


def test_landing_page_lists_every_lesson_in_order(page, site_url):
    problems = watch_problems(page)
    page.goto(site_url + "index.html", wait_until="load")
    links = page.locator("table.afl-curriculum tbody tr td:nth-child(2) a")
    assert [link.get_attribute("href") for link in links.all()] == [f"{stem}.html" for stem in LESSONS]
    links.nth(len(LESSONS) - 1).click()
    page.wait_for_url(f"**/{LESSONS[-1]}.html", wait_until="load")
    assert not settled(page, problems), problems


def test_search_box_finds_sections_and_their_links_work(page, site_url):
    problems = watch_problems(page)
    page.goto(site_url + f"{LESSONS[0]}.html", wait_until="load")
    page.locator(".afl-search-form input").fill("softmax temperature")
    page.locator(".afl-search-form input").press("Enter")
    page.wait_for_url("**/search.html?q=*")
    results = page.locator("#afl-results li a")
    results.first.wait_for(timeout=10_000)
    assert results.count() >= 2, page.locator("#afl-count").inner_text()
    assert all("softmax" in (text.lower()) or "temperature" in text.lower()
               for text in page.locator("#afl-results li").all_inner_texts())
    target = results.first.get_attribute("href")
    results.first.click()
    path, _, anchor = target.partition("#")
    page.wait_for_url(f"**/{path}*", wait_until="load")
    assert page.url.split("#")[0].endswith(path)
    if anchor:
        assert page.locator(f"[id='{anchor}']").count() == 1, target
    page.goto(site_url + "search.html?q=zqxjv+nonexistentword", wait_until="load")
    page.locator("#afl-count", has_text="No results").wait_for(timeout=10_000)  # the search script ran
    assert page.locator("#afl-results li").count() == 0
    assert not settled(page, problems), problems


class LinksAndIds(html.parser.HTMLParser):
    """Every id, and every <a href>, <img src>, <script src> and <link href>, of a page."""

    WANTED = {"a": "href", "img": "src", "script": "src", "link": "href"}

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") is not None:
            self.ids.add(attrs["id"])
        if attrs.get(self.WANTED.get(tag, "")):
            self.links.append(attrs[self.WANTED[tag]])

    handle_startendtag = handle_starttag


def test_every_internal_link_and_anchor_resolves(built_site, site_url):
    """Crawl every page's <a href>, <img src>, <script src> and <link href> that stays in the site."""
    site = built_site[0]
    pages = sorted(site.glob("*.html"))
    assert {p.stem for p in pages} >= set(LESSONS) | {"index", "search"}
    ids: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []
    for path in pages:
        found = LinksAndIds()   # the standard library's tokenizer, no tree: a third of BeautifulSoup's time
        found.feed(path.read_text(encoding="utf-8"))
        ids[path.name] = found.ids
        links += [(path.name, target) for target in found.links
                  if not urllib.parse.urlparse(target).scheme and not target.startswith("//")]
    assert len(links) > 10 * len(pages)
    broken = []
    # the server is a plain static one: a link resolves when the file it names is in the site (read
    # from disk, which takes a fraction of a HEAD request per file); one HEAD checks the server agrees
    with urllib.request.urlopen(urllib.request.Request(site_url + "_static/plotly.min.js", method="HEAD"),
                                timeout=10) as response:
        assert response.status == 200
    for source, target in links:
        url = urllib.parse.urljoin(site_url + source, target)
        file_part, _, anchor = url.partition("#")
        name = urllib.parse.unquote(urllib.parse.urlparse(file_part).path).lstrip("/") or "index.html"
        if not (site / name).is_file():
            broken.append(f"{source} -> {target}: no file {name} in the site")
            continue
        # A browser looks for the fragment as written, then percent-decoded (nbconvert's ids are encoded).
        found = {anchor, urllib.parse.unquote(anchor)} & ids.get(name, set())
        if anchor and name.endswith(".html") and not found:
            broken.append(f"{source} -> {target}: no element with id {anchor!r}")
    assert not broken, "\n".join(broken[:40])
