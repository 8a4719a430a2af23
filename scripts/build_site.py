"""Build the lab's static site: every lesson executed in one profile, rendered as HTML, offline.

    python scripts/build_site.py                    # cpu profile (minutes per lesson), into _build/site
    python scripts/build_site.py --profile smoke    # seconds per lesson: what the site test builds
    python -m http.server -d _build/site            # then open http://localhost:8000

1. Every ``notebooks/NN_*.ipynb`` (found by glob) is executed with nbclient, in parallel, in a kernel
   whose ``ATTNFLEX_PROFILE`` is the chosen profile, from ``notebooks/`` as the tests run them. The
   executed copies go to ``_build/executed/PROFILE/`` (never over the committed notebooks). The
   longest lessons (by the last build's times) start first, and each worker renders a lesson's page
   (step 2) as soon as it has run it, while the other worker still executes.
   The kernel starts with ``site/kernel_startup.py``: every widget's drawing callback is recorded and,
   after its cell, re-run over a bounded grid of its controls' values (``attnflex_lab/viz/site_states``).
2. Each copy is made static (``site_outputs``: a widget becomes HTML controls that swap its
   precomputed drawings (``site_live``, ``live-widgets.js``), or its first drawing and a note saying
   why not; plotly JSON gets its HTML twin; a page past 8 MB fails the build) and rendered by
   nbconvert with ``site/templates/afl`` (JupyterLab's look, plus the site's bar).
3. The landing page (``site/index.md`` with the curriculum table), a search page and its index,
   and ``_static/`` (site CSS and JS, plotly.js from the plotly package, MathJax from Debian's
   ``libjs-mathjax``) complete the site. Nothing is fetched from a CDN when a page is read.

Jupyter Book 2 (mystmd) was the first choice, but its HTML theme is downloaded from the internet on
every fresh machine, which CI cannot reach; nbconvert renders the notebooks with what the lab's own
dev install already has.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from queue import Empty

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import site_live  # noqa: E402
import site_outputs  # noqa: E402
import site_pages  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SITE_SRC = ROOT / "site"
PROFILES = ("smoke", "cpu", "gpu")
MATHJAX_DIR = Path(os.environ.get("ATTNFLEX_MATHJAX", "/usr/share/javascript/mathjax"))
# The parts of MathJax 2 that the TeX-AMS_CHTML-full configuration loads (not its 40 MB of fonts
# and other outputs).
MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "config/local", "jax/input/TeX",
                 "jax/output/CommonHTML", "jax/element", "extensions", "fonts/HTML-CSS/TeX/woff")
CELL_TIMEOUT_S = {"smoke": 600, "cpu": 3600, "gpu": 3600}
# States precomputed per widget. Smoke keeps the site test quick: a widget's first two controls
# still move (each control gets a second value before any gets a third), a third one stays fixed.
MAX_STATES = {"smoke": 4, "cpu": 50, "gpu": 50}
# CPU seconds of precomputation per widget and per lesson page (site_states sizes each grid from its
# first drawing's cost; a widget past the page's budget stays a note saying so). Smoke: every widget
# still gets a second value for its first controls, at a bounded cost per page whatever lessons add.
WIDGET_SECONDS = {"smoke": 3.0, "cpu": 60.0, "gpu": 60.0}
PAGE_SECONDS = {"smoke": 8.0, "cpu": 300.0, "gpu": 300.0}
STATES_MODULE = ROOT / "attnflex_lab" / "viz" / "site_states.py"


def find_notebooks(pattern: str = "[0-9][0-9]_*.ipynb") -> list[Path]:
    found = sorted((ROOT / "notebooks").glob(pattern))
    if not found:
        raise SystemExit(f"no notebooks match notebooks/{pattern}")
    return found


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lab_hash() -> str:
    """One hash of everything an execution depends on besides the notebook: the lab package (code
    and data) and the kernel-side site code. ``--cache`` reuses an executed copy only when it matches."""
    digest = hashlib.sha256()
    files = [p for p in sorted((ROOT / "attnflex_lab").rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    for path in [*files, SITE_SRC / "kernel_startup.py", Path(__file__)]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


POLL_SLICE_S = 1.0


def _sliced(original):
    """A channel's ``get_msg`` that waits in slices of a second. zmq's asyncio poll can miss the
    wake-up for a message that has already arrived (seen here under load: a lesson sat idle for
    exactly its 600 s cell timeout after a widget cell, then carried on); a new poll looks first."""
    async def get_msg(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else min(POLL_SLICE_S, max(0.0, deadline - time.monotonic()))
            try:
                return await original(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
    return get_msg


class WakefulClient(NotebookClient):
    """nbclient's NotebookClient whose shell and iopub waits cannot oversleep (see ``_sliced``)."""

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        for channel in (client.shell_channel, client.iopub_channel):
            channel.get_msg = _sliced(channel.get_msg)
        return client


def states_dir(executed: Path) -> Path:
    """Where a lesson's precomputed widget states go: beside its executed copy."""
    return executed.with_suffix(".states")


def execute_one(source: Path, target: Path, profile: str, threads: int,
                max_states: int) -> tuple[str, float, str]:
    """Run one notebook top to bottom (in a worker process); return (name, seconds, error or "").

    The kernel starts with site/kernel_startup.py, which records every widget's drawing callback and
    precomputes its states into ``states_dir(target)`` (attnflex_lab/viz/site_states.py)."""
    shutil.rmtree(states_dir(target), ignore_errors=True)
    os.environ.update({"ATTNFLEX_PROFILE": profile, "OMP_NUM_THREADS": str(threads),
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                       "PYTHONSTARTUP": str(SITE_SRC / "kernel_startup.py"),
                       "ATTNFLEX_SITE_STATES": str(states_dir(target)),
                       "ATTNFLEX_SITE_STATES_MODULE": str(STATES_MODULE),
                       "ATTNFLEX_SITE_MAX_STATES": str(max_states),
                       "ATTNFLEX_SITE_MAX_SECONDS": str(WIDGET_SECONDS[profile]),
                       "ATTNFLEX_SITE_PAGE_SECONDS": str(PAGE_SECONDS[profile])})
    nb = nbformat.read(source, as_version=4)
    client = WakefulClient(nb, timeout=CELL_TIMEOUT_S[profile], kernel_name="python3",
                           resources={"metadata": {"path": str(source.parent)}}, store_widget_state=True,
                           # Under load outputs can trail the reply: wait for them, and fail rather than lose them.
                           iopub_timeout=120, raise_on_iopub_timeout=True)
    start = time.monotonic()
    error = ""
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        error = str(err)[-3000:]
    nb.metadata["attnflex_site"] = {"profile": profile, "source_sha256": source_hash(source), "max_states": max_states,
                                    "lab_sha256": lab_hash(), "seconds": round(time.monotonic() - start, 1)}
    if not error:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    return source.name, time.monotonic() - start, error


def is_current(source: Path, target: Path, profile: str, max_states: int, lab: str | None = None) -> bool:
    """Whether ``target`` is an execution of this very notebook, profile and grid (and, when ``lab``
    is given, of this very lab: ``lab_hash()``)."""
    meta = site_metadata(target)
    return (meta.get("profile") == profile and meta.get("source_sha256") == source_hash(source)
            and meta.get("max_states") == max_states and (lab is None or meta.get("lab_sha256") == lab))


def previous_seconds(target: Path) -> float:
    """How long the last build took to execute this lesson (0 when never built): the pool starts
    the longest lessons first, so that no long one runs alone at the end."""
    return float(site_metadata(target).get("seconds", 0.0))


def site_metadata(target: Path) -> dict:
    """What the build recorded in an executed copy ({} when absent or unreadable); read as plain
    JSON, without nbformat's validation of megabytes of outputs."""
    try:
        with open(target, encoding="utf-8") as f:
            return json.load(f).get("metadata", {}).get("attnflex_site", {})
    except (OSError, ValueError):
        return {}


def build_one(source: Path, target: Path, profile: str, threads: int, max_states: int, reuse: str,
              lesson, lessons: list, out: Path) -> dict:
    """Execute one lesson (unless ``reuse`` and its copy is current), then render its page, both in
    a worker process: rendering one lesson overlaps executing the next. ``reuse``: "" (never),
    "notebook" (the notebook is unchanged) or "lab" (the notebook and the lab are: ``lab_hash``)."""
    lab = lab_hash() if reuse == "lab" else None
    seconds, error = 0.0, ""
    reused = bool(reuse) and is_current(source, target, profile, max_states, lab)
    if not reused:
        _, seconds, error = execute_one(source, target, profile, threads, max_states)
    if error:
        return {"name": source.name, "seconds": seconds, "error": error}
    rendered = render_page(target, lesson, lessons, out, profile)
    return {"name": source.name, "seconds": seconds, "error": "", "reused": reused, **rendered}


def build_lessons(notebooks: list[Path], lessons: list, executed_dir: Path, out: Path, profile: str, jobs: int,
                  reuse: str, max_states: int, max_page_bytes: int = site_live.MAX_PAGE_BYTES) -> list[dict]:
    """Every lesson executed and rendered on ``jobs`` workers; return the search entries of all
    pages. Fails, naming them, when a notebook raised or pages pass ``max_page_bytes``."""
    order = sorted(zip(notebooks, lessons, strict=True),
                   key=lambda pair: -previous_seconds(executed_dir / pair[0].name))
    jobs = max(1, min(jobs, len(notebooks)))
    # Smoke steps are tiny: one thread each runs faster than a pool (see conftest.py).
    threads = 1 if profile == "smoke" else max(1, (os.cpu_count() or 1) // jobs)
    failures, results = [], {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(build_one, nb, executed_dir / nb.name, profile, threads, max_states, reuse,
                               lesson, lessons, out) for nb, lesson in order]
        for future in as_completed(futures):
            done = future.result()
            results[done["name"]] = done
            if done["error"]:
                print(f"  executed {done['name']} in {done['seconds']:.1f} s  FAILED", flush=True)
                failures.append(f"{done['name']}:\n{done['error']}")
            else:
                ran = "reused" if done["reused"] else f"executed in {done['seconds']:.1f} s"
                print(f"  {done['name']}: {ran}; {done['line']}", flush=True)
    if failures:
        raise SystemExit("these notebooks raised, so the site was not built:\n\n" + "\n\n".join(failures))
    site_live.check_page_budget({r["page"]: r["bytes"] for r in results.values()}, max_page_bytes)
    return [entry for nb in notebooks for entry in results[nb.name]["entries"]]


def copy_static(out: Path) -> None:
    static = out / "_static"
    shutil.copytree(SITE_SRC / "static", static, dirs_exist_ok=True)
    import plotly

    shutil.copy2(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static / "plotly.min.js")
    if not (MATHJAX_DIR / "MathJax.js").exists():
        raise SystemExit(f"MathJax 2 not found in {MATHJAX_DIR}: run `bash scripts/setup_site.sh` "
                         f"(installs Debian's libjs-mathjax) or set ATTNFLEX_MATHJAX to a MathJax 2 folder")
    for part in MATHJAX_PARTS:
        source, target = MATHJAX_DIR / part, static / "mathjax" / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():  # Debian links the fonts in from fonts-mathjax: copy the files themselves
            shutil.copytree(source, target, dirs_exist_ok=True, symlinks=False)
        elif source.exists():
            shutil.copy2(source, target)


@functools.cache
def _exporter():
    """nbconvert's exporter with the site's template, loaded once per process."""
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="afl", extra_template_basedirs=[str(SITE_SRC / "templates")])


def render_page(path: Path, lesson, lessons: list, out: Path, profile: str) -> dict:
    """Write one lesson's page; return its name, size, search entries and a line for the log."""
    exporter = _exporter()
    nb = nbformat.read(path, as_version=4)
    counts = site_outputs.make_static(nb, site_live.load_records(states_dir(path)))
    resources = {"metadata": {"name": f"{lesson.number} · {lesson.title}"}, "afl_static": "_static",
                 "afl_plotly": counts["plotly"] > 0, "afl_live": counts["live"] > 0,
                 "afl_nav": site_pages.nav_bar(lessons, lesson), "afl_footer": site_pages.footer(profile)}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body = site_pages.localize_badges(site_pages.rewrite_notebook_links(body, {x.stem for x in lessons}))
    (out / lesson.page).write_text(body, encoding="utf-8")
    size = len(body.encode("utf-8"))
    line = (f"rendered {lesson.page} ({counts['widgets']} widget(s), {counts['live']} interactive, "
            f"{counts['plotly']} plotly figure(s), {counts['frames']} server frame(s), {size / 2**20:.1f} MB)")
    return {"page": lesson.page, "bytes": size, "line": line,
            "entries": site_pages.search_entries(body, lesson.page, f"{lesson.number} · {lesson.title}")}


def render_lessons(executed: list[Path], lessons: list, out: Path, profile: str,
                   max_page_bytes: int = site_live.MAX_PAGE_BYTES) -> list[dict]:
    """Write one page per lesson here, in order; return the search entries of all of them. Fails,
    naming them, when pages pass ``max_page_bytes``."""
    entries, sizes = [], {}
    for path, lesson in zip(executed, lessons, strict=True):
        rendered = render_page(path, lesson, lessons, out, profile)
        sizes[rendered["page"]] = rendered["bytes"]
        entries += rendered["entries"]
        print(f"  {rendered['line']}")
    site_live.check_page_budget(sizes, max_page_bytes)
    return entries


def build(profile: str, out: Path, executed_dir: Path, jobs: int, reuse: str, pattern: str,
          max_states: int) -> None:
    start = time.monotonic()
    notebooks = find_notebooks(pattern)
    lessons = site_pages.with_readme(
        [site_pages.lesson_from_notebook(nb.stem, nbformat.read(nb, as_version=4)) for nb in notebooks],
        (ROOT / "README.md").read_text(encoding="utf-8"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    copy_static(out)
    print(f"executing and rendering {len(notebooks)} notebooks in the {profile} profile with {jobs} job(s)",
          flush=True)
    entries = build_lessons(notebooks, lessons, executed_dir, out, profile, jobs, reuse, max_states)
    lessons_at = time.monotonic()
    nav, foot = site_pages.nav_bar(lessons), site_pages.footer(profile)
    landing = site_pages.landing_body((SITE_SRC / "index.md").read_text(encoding="utf-8"), lessons)
    (out / "index.html").write_text(site_pages.page(site_pages.SITE_TITLE, landing, nav, foot), encoding="utf-8")
    (out / "search.html").write_text(site_pages.page(f"Search · {site_pages.SITE_TITLE}", site_pages.search_body(),
                                                     nav, foot), encoding="utf-8")
    entries += site_pages.search_entries(landing, "index.html", site_pages.SITE_TITLE)
    (out / "_static" / "search-index.js").write_text(site_pages.search_index_js(entries), encoding="utf-8")
    done = time.monotonic()
    print(f"site built in {done - start:.0f} s (lessons executed and rendered {lessons_at - start:.0f} s, "
          f"the rest {done - lessons_at:.0f} s): {out / 'index.html'}")
    print(f"open it with: python -m http.server -d {out}   (then http://localhost:8000)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="default _build/site (smoke: _build/site-smoke)")
    parser.add_argument("--executed", type=Path, default=None, help="default _build/executed/PROFILE")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="notebooks executed at once")
    parser.add_argument("--reuse", action="store_true",
                        help="keep executed copies of unchanged notebooks (even if the lab changed)")
    parser.add_argument("--cache", action="store_true",
                        help="keep executed copies only where the notebook and the lab are both unchanged "
                             "(what the site test uses between runs)")
    parser.add_argument("--notebooks", default="[0-9][0-9]_*.ipynb", help="glob under notebooks/")
    parser.add_argument("--max-states", type=int, default=None,
                        help=f"precomputed states per widget (default {MAX_STATES})")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    max_states = MAX_STATES[args.profile] if args.max_states is None else args.max_states
    if not 1 <= max_states <= 50:
        parser.error(f"--max-states must be between 1 and 50 (the site's bound per widget), got {max_states}")
    out = args.out or ROOT / "_build" / ("site" if args.profile == "cpu" else f"site-{args.profile}")
    executed_dir = args.executed or ROOT / "_build" / "executed" / args.profile
    reuse = "notebook" if args.reuse else "lab" if args.cache else ""
    build(args.profile, out.resolve(), executed_dir.resolve(), args.jobs, reuse, args.notebooks, max_states)


if __name__ == "__main__":
    main()
