"""The site's pages around the lessons: navigation bar, landing page with the curriculum, search index.

Everything here is plain string work on the notebooks, README.md and the rendered HTML, so it can be
tested without executing anything. ``build_site.py`` calls it.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import mistune
from bs4 import BeautifulSoup

SITE_TITLE = "attnflex-lab"
CURRICULUM_MARK = "{{ curriculum }}"
_TITLE_RE = re.compile(r"^#\s+(\d\d)\s*·\s*(.+?)\s*$", re.MULTILINE)
_README_ROW = re.compile(r"^\|\s*(\d\d)\s*\|\s*\[([^\]]+)\]\(([^)]+)\)\s*\|(.*)\|\s*$")


@dataclass
class Lesson:
    number: str          # "01"
    title: str           # "Attention as a weighted average"
    stem: str            # "01_attention_as_a_weighted_average"
    teaches: str = ""    # the README row's "what it teaches" (markdown), or the notebook's own list
    minutes: str = ""    # "0.3 / 0.3 / 0.3" from the README row, when it has one

    @property
    def page(self) -> str:
        return f"{self.stem}.html"


def lesson_from_notebook(stem: str, nb) -> Lesson:
    """Number and title from the title cell ("# 01 · Title"); what it teaches from its bullet list."""
    first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    source = "".join(first["source"]) if first else ""
    match = _TITLE_RE.search(source)
    if match is None:
        raise ValueError(f"{stem}: the first markdown cell must start with '# NN · Title', "
                         f"got {source[:80]!r}")
    bullets = re.findall(r"^- (.+)$", source.split("**What you will learn**")[-1].split("**Prereq")[0],
                         re.MULTILINE)
    return Lesson(match.group(1), match.group(2), stem, teaches="; ".join(bullets))


def readme_rows(readme_text: str) -> dict[str, tuple[str, str]]:
    """Lesson number -> (what it teaches, minutes) from README.md's notebook table."""
    rows = {}
    for line in readme_text.splitlines():
        match = _README_ROW.match(line)
        if match:
            cells = [c.strip() for c in match.group(4).split("|")]
            if len(cells) >= 2:
                rows[match.group(1)] = (cells[0], cells[1])
    return rows


def with_readme(lessons: list[Lesson], readme_text: str) -> list[Lesson]:
    """The README row's curated text and minutes where a lesson has a row (new lessons may not yet)."""
    rows = readme_rows(readme_text)
    for lesson in lessons:
        if lesson.number in rows:
            lesson.teaches, lesson.minutes = rows[lesson.number]
    return lessons


def inline_markdown(text: str) -> str:
    """One line of markdown as HTML without the surrounding <p>."""
    rendered = mistune.html(text).strip()
    return rendered.removeprefix("<p>").removesuffix("</p>")


def curriculum_table(lessons: list[Lesson]) -> str:
    rows = "\n".join(
        f'<tr><td>{lesson.number}</td><td><a href="{lesson.page}">{html.escape(lesson.title)}</a></td>'
        f"<td>{inline_markdown(lesson.teaches)}</td><td>{html.escape(lesson.minutes)}</td></tr>"
        for lesson in lessons)
    return ('<table class="afl-curriculum"><thead><tr><th>#</th><th>lesson</th><th>what it teaches</th>'
            "<th>smoke / cpu / gpu (min)</th></tr></thead>\n<tbody>\n" + rows + "\n</tbody></table>")


def nav_bar(lessons: list[Lesson], current: Lesson | None = None) -> str:
    """Home, previous and next lesson, and a search box that opens search.html?q=..."""
    links = [f'<a class="afl-home" href="index.html">{SITE_TITLE}</a>']
    if current is not None:
        index = [lesson.stem for lesson in lessons].index(current.stem)
        if index > 0:
            before = lessons[index - 1]
            links.append(f'<a class="afl-prev" href="{before.page}">← {before.number} {html.escape(before.title)}</a>')
        if index + 1 < len(lessons):
            after = lessons[index + 1]
            links.append(f'<a class="afl-next" href="{after.page}">{after.number} {html.escape(after.title)} →</a>')
    search = ('<form class="afl-search-form" action="search.html" method="get" role="search">'
              '<input type="search" name="q" placeholder="Search the lessons" aria-label="Search"></form>')
    return '<nav class="afl-nav">' + " ".join(links) + search + "</nav>"


def footer(profile: str) -> str:
    return (f'<footer class="afl-footer">Executed in the <code>{html.escape(profile)}</code> profile. '
            "Widgets move between precomputed states on this page: run the notebook in Jupyter or Colab "
            "for every value."
            "</footer>")


def page(title: str, body: str, nav: str, foot: str) -> str:
    """A site page that is not a lesson (landing, search): the same bar, the site's own CSS."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1.0">'
            f"<title>{html.escape(title)}</title>"
            '<link rel="icon" href="_static/favicon.svg"><link rel="stylesheet" href="_static/site.css"></head>\n'
            f'<body class="afl-page">{nav}<main class="afl-main">{body}</main>{foot}</body></html>\n')


def landing_body(markdown_text: str, lessons: list[Lesson]) -> str:
    if CURRICULUM_MARK not in markdown_text:
        raise ValueError(f"the landing page must hold {CURRICULUM_MARK!r} where the curriculum goes")
    before, after = markdown_text.split(CURRICULUM_MARK, 1)
    return mistune.html(before) + curriculum_table(lessons) + mistune.html(after)


def search_entries(page_html: str, url: str, lesson_title: str) -> list[dict]:
    """One entry per heading of a rendered lesson: its anchor, its heading and the text under it
    (markdown and code alike) up to the next heading."""
    soup = BeautifulSoup(page_html, "html.parser")
    main = soup.find("main") or soup
    sections = [{"url": url, "title": lesson_title, "text": []}]
    for element in main.find_all(["h1", "h2", "h3", "p", "li", "pre", "td"]):
        if element.name in ("h1", "h2", "h3"):
            heading = element.get_text(" ", strip=True).removesuffix("¶").strip()
            anchor = element.get("id")
            sections.append({"url": f"{url}#{anchor}" if anchor else url,
                             "title": lesson_title if element.name == "h1" else f"{lesson_title} › {heading}",
                             "text": []})
        elif element.name in ("li", "td") or not element.find_parent(["li", "td"]):
            sections[-1]["text"].append(element.get_text(" ", strip=True))
    entries = []
    for section in sections:
        text = re.sub(r"\s+", " ", " ".join(section["text"])).strip()
        if text or section is not sections[0]:
            entries.append({"url": section["url"], "title": section["title"], "text": text[:4000]})
    return entries


def search_index_js(entries: list[dict]) -> str:
    """A script (not JSON fetched at run time), so search works from file:// as well as over http."""
    return "window.AFL_SEARCH = " + json.dumps(entries, ensure_ascii=False) + ";\n"


def search_body() -> str:
    return ('<h1>Search</h1><form action="search.html" method="get" role="search">'
            '<input id="afl-q" type="search" name="q" placeholder="softmax, gradient, KV cache…" '
            'aria-label="Search the lessons"></form><p id="afl-count"></p><ol id="afl-results"></ol>'
            '<script src="_static/search-index.js"></script><script src="_static/search.js"></script>')


COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def localize_badges(page_html: str, static: str = "_static") -> str:
    """The Colab badge image comes from the site itself, so a page loads nothing from elsewhere
    (the badge still links to Colab)."""
    return page_html.replace(f'src="{COLAB_BADGE}"', f'src="{static}/colab-badge.svg"')


def rewrite_notebook_links(page_html: str, stems: set[str]) -> str:
    """Links from one lesson to another ("03_x.ipynb#y") point at the lesson's page instead."""
    def swap(match: re.Match) -> str:
        target, anchor = match.group(2), match.group(3) or ""
        stem = Path(target).stem
        return f'{match.group(1)}{stem}.html{anchor}"' if stem in stems else match.group(0)
    return re.sub(r'(href=")(?:\./|\.\./notebooks/)?([\w./-]+\.ipynb)(#[^"]*)?"', swap, page_html)
