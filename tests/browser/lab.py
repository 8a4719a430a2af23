"""Drive a real JupyterLab in Debian's Chromium (Playwright, never a browser download).

`JupyterLabServer` starts JupyterLab on 127.0.0.1 with a random token on a temporary copy of
`notebooks/` (so runs never touch the committed, stripped notebooks); the helpers below open a
notebook, run all its cells, move a slider with the keyboard and wait for the figure to change.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = os.environ.get("ATTNFLEX_CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network: no background fetches, no sandbox (CI runs as root).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_status(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> dict:
    """Poll a Jupyter `/api/status` URL until it answers; return its JSON."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Jupyter server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError as err:
            last_error = err
            time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} within {timeout:.0f} s (last error: {last_error})")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class JupyterLabServer:
    def __init__(self, workdir: Path, profile: str = "smoke"):
        self.root = workdir / "notebooks"
        shutil.copytree(REPO / "notebooks", self.root)
        settings = workdir / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        # No news or update checks: the machine has no network, and their toasts cover the page.
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # Render every cell (no windowing), so the tests can read every prompt.
        notebook_settings = workdir / "lab-settings" / "@jupyterlab" / "notebook-extension"
        notebook_settings.mkdir(parents=True)
        (notebook_settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ATTNFLEX_PROFILE": profile, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
               "JUPYTERLAB_SETTINGS_DIR": str(workdir / "lab-settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
               "JUPYTER_RUNTIME_DIR": str(workdir / "runtime")}
        self.log = open(workdir / "jupyterlab.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0",
             "--ServerApp.allow_root=True"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root)
        try:
            self.status = wait_for_status(f"{self.url}/api/status?token={self.token}", proc=self.proc)
        except Exception:
            self.stop()
            raise

    def notebook_url(self, name: str) -> str:
        # A fresh workspace for every page: JupyterLab would otherwise reopen the notebooks of
        # earlier tests beside this one.
        return f"{self.url}/lab/workspaces/w{secrets.token_hex(4)}/tree/{name}?token={self.token}"

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def code_cell_count(path: Path) -> int:
    nb = json.loads(path.read_text())
    return sum(cell["cell_type"] == "code" for cell in nb["cells"])


def open_and_run_all(page, server: JupyterLabServer, name: str, timeout_s: float = 180) -> None:
    """Open a notebook, wait for its kernel, run every cell and wait until all have run without error."""
    page.goto(server.notebook_url(name))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    # The kernel is ready when the status bar says so ("Python 3 (ipykernel) | Idle").
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    expected = code_cell_count(server.root / name)
    prompts = page.locator(".jp-NotebookPanel:visible .jp-CodeCell .jp-InputArea-prompt")
    # A raised exception stops "Run All" at that cell: report its traceback instead of waiting.
    errors = page.locator(".jp-NotebookPanel:visible [data-mime-type='application/vnd.jupyter.stderr']",
                          has_text="Traceback")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert errors.count() == 0, f"{name}: a cell raised:\n{errors.first.inner_text()[:2000]}"
        texts = [t.strip() for t in prompts.all_inner_texts()]
        done = [t for t in texts if re.fullmatch(r"\[\d+\]:", t)]
        if len(texts) == expected and len(done) == expected:
            break
        page.wait_for_timeout(500)
    else:
        shot = screenshot(page, f"timeout_{Path(name).stem}")
        raise TimeoutError(f"{name}: not every cell ran within {timeout_s:.0f} s; prompts: {texts} "
                           f"(screenshot: {shot})")
    assert errors.count() == 0, f"{name}: a cell raised:\n{errors.first.inner_text()[:2000]}"


def slider(page, description: str):
    """The ipywidgets slider whose description label is `description`."""
    label = page.locator(".widget-label", has_text=description)
    box = page.locator(".widget-slider", has=label).first
    box.wait_for(timeout=30_000)
    return box


def widget_image(page, slider_box):
    """The figure (an <img>) drawn in the same widget box as the slider."""
    container = page.locator(".widget-vbox", has=slider_box).last
    image = container.locator("img").first
    image.wait_for(timeout=30_000)
    return image


def press_keys_on_slider(page, slider_box, key: str, times: int) -> str:
    """Focus the slider's handle and press `key` `times` times; return the new readout text."""
    handle = slider_box.locator(".noUi-handle, .ui-slider-handle").first  # ipywidgets 8 / 7
    handle.focus()
    for _ in range(times):
        page.keyboard.press(key)
    return slider_box.locator(".widget-readout").first.inner_text()


def run_and_find_slider(page, server: JupyterLabServer, name: str, description: str, shot: str):
    """Run a notebook, find the slider described `description` and its figure, take a "before"
    screenshot; return (slider box, figure src, readout as float)."""
    open_and_run_all(page, server, name)
    box = slider(page, description)
    box.scroll_into_view_if_needed()
    src = widget_image(page, box).get_attribute("src")
    readout = float(box.locator(".widget-readout").first.inner_text())
    screenshot(page, f"{shot}_before")
    return box, src, readout


def wait_for_new_src(page, image, old_src: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            src = image.get_attribute("src", timeout=2_000)
        except Exception:  # the output area re-renders: the old <img> may be gone for a moment
            src = None
        if src and src != old_src:
            return src
        page.wait_for_timeout(250)
    raise TimeoutError(f"the figure did not change within {timeout_s:.0f} s of moving the slider")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
