"""`make lab` serves the notebooks: start it headless, ask the server for its status and files."""

import json
import os
import secrets
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.browser.lab import free_port, wait_for_status

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_make_lab_serves_the_notebooks(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token} --ServerApp.port_retries=0"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = open(tmp_path / "make_lab.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(["make", "-s", "lab", f"PORT={port}", f"LAB_ARGS={args}"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        status = wait_for_status(f"{base}/api/status?token={token}", timeout=300, proc=proc)
        assert "started" in status
        with urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=10) as response:
            listing = json.loads(response.read())
        served = {item["name"] for item in listing["content"]}
        expected = {p.name for p in (REPO / "notebooks").glob("*.ipynb")}
        assert expected and expected <= served, f"served {sorted(served)}, expected {sorted(expected)}"
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=30) as response:
            assert response.status == 200 and b"JupyterLab" in response.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
