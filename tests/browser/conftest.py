"""Fixtures for the real-browser tests: one JupyterLab server per session, a fresh page per test."""

import os
from pathlib import Path

import pytest

from .lab import CHROMIUM, CHROMIUM_ARGS, JupyterLabServer


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    server = JupyterLabServer(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        # `make test` installs Debian's chromium first (scripts/setup_browser.sh): on CI this never skips.
        pytest.fail(f"Chromium not found at {CHROMIUM}; run `bash scripts/setup_browser.sh` "
                    f"or set ATTNFLEX_CHROMIUM (or run `make test-fast` to leave browser tests out)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()
