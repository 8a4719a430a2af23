"""``python -m attnflex_lab serve``: a smoke checkpoint from the training code, served by FastAPI.

The app is driven in-process through FastAPI's TestClient (httpx); one test starts the real command
line (uvicorn) in a subprocess on 127.0.0.1 for what only a socket shows: the listen backlog and a
graceful SIGTERM. Every test has a pytest-timeout bound.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from attnflex_lab import recipes
from attnflex_lab.models.transformer import SequenceEncoder
from attnflex_lab.recipes import sequence
from attnflex_lab.serve import Limits, Predictor, ServeSetupError, create_app, load_predictor
from attnflex_lab.training.checkpoint import latest_checkpoint, load_checkpoint, save_atomic

from .single_thread import one_thread_per_module  # noqa: F401 (autouse: one torch thread)

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]
LENGTH = 6                                   # sort's sequence length in the smoke profile
MAX_BODY = 100_000


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory) -> Path:
    """A few steps of the sort recipe, smoke profile, through the same call the train CLI makes."""
    folder = tmp_path_factory.mktemp("sort_ckpt")
    recipes.train_recipe("sort", profile_name="smoke", seed=0, steps=3, checkpoint_dir=str(folder),
                         progress=False)
    return folder


@pytest.fixture(scope="module")
def predictor(checkpoint_dir) -> Predictor:
    return load_predictor(checkpoint_dir, task="sort")


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, Limits(max_body=MAX_BODY)),
                    raise_server_exceptions=False) as test_client:
        yield test_client


def reference_model(checkpoint_dir) -> SequenceEncoder:
    """The checkpoint's network, rebuilt here without the server's code."""
    state = torch.load(latest_checkpoint(checkpoint_dir), weights_only=True)["model"]
    model = SequenceEncoder(sequence.model_config("smoke", LENGTH))
    model.load_state_dict(state)
    return model.eval()


def expected_prediction(checkpoint_dir, digits: list[int]) -> list[int]:
    with torch.no_grad():
        return reference_model(checkpoint_dir)(torch.tensor([digits])).argmax(-1)[0].tolist()


def test_predict_answers_with_the_checkpoints_model_and_its_attention(client, checkpoint_dir):
    digits = [5, 0, 3, 3, 9, 1]
    response = client.post("/predict", json={"input": digits})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "sort" and body["model_ms"] >= 0
    assert body["prediction"] == expected_prediction(checkpoint_dir, digits)
    attention = body["attention"]
    weights = torch.tensor(attention["weights"])
    assert attention["axes"] == ["layer", "head", "output", "input"]
    assert list(weights.shape) == attention["shape"] and weights.shape[-2:] == (LENGTH, LENGTH)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-3, rtol=0)


def test_health_ready_and_docs_describe_the_model(client):
    health = client.get("/health")
    assert health.status_code == 200
    info = health.json()
    assert (info["status"], info["task"], info["profile"], info["step"]) == ("ok", "sort", "smoke", 3)
    assert info["verified"] is True and info["n_params"] > 0 and "6 integers" in info["input"]
    assert client.post("/predict", json=info["example"]).status_code == 200
    assert client.get("/ready").json() == {"ready": True, "problem": None}
    assert client.get("/docs").status_code == 200
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"PredictRequest", "PredictResponse", "Health"} <= set(schemas)


@pytest.mark.parametrize("body, status, words", [
    ({"inputs": [1] * LENGTH}, 422, ["inputs", "input"]),                  # a typo names both fields
    ({"input": [1] * 5}, 422, ["input", "exactly 6 digits"]),
    ({"input": [1] * 5 + [10]}, 422, ["input", "outside 0..9"]),
    ({"input": [1] * LENGTH, "max_new_tokens": 4}, 422, ["max_new_tokens", "unknown request fields"]),
    ({"input": {"a": 1}}, 422, ["input"]),
    ([1, 2, 3], 422, ["body"]),
])
def test_bad_fields_are_a_422_that_names_them(client, body, status, words):
    response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    detail = json.dumps(response.json()["detail"])
    for word in words:
        assert word in detail
    assert client.post("/predict", json={"input": [1] * LENGTH}).status_code == 200


@pytest.mark.parametrize("raw, content_type, status, words", [
    (b"[" * 60_000, "application/json", 400, "nests 60000 levels"),         # a RecursionError in json
    (b'{"input": ' + b"7" * 5_000 + b"}", "application/json", 400, "digits"),  # int() refuses 4301+
    (b'{"input": "' + b"[" * 500 + b'"}', "application/json", 422, "input"),  # brackets in a string
    (b"x" * (MAX_BODY + 1), "application/json", 413, "over the limit"),
    (b'{"input": [1, 2', "application/json", 422, "json_invalid"),
    (b'{"input": [1,1,1,1,1,1]}', "text/plain", 415, "send JSON"),
    (b'{"input": [1,1,1,1,1,1]}', "APPLICATION/JSON; charset=UTF-8", 200, "prediction"),
])
def test_raw_bodies_are_refused_before_parsing_blows_up(client, raw, content_type, status, words):
    response = client.post("/predict", content=raw, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert words in response.text


def test_a_failing_model_is_a_500_and_a_slow_one_meets_the_deadline(predictor, monkeypatch):
    def broken(model, inputs, **options):
        raise RuntimeError("planted failure")

    def slow(model, inputs, **options):
        time.sleep(1.0)
        return {"prediction": [], "attention": None}

    with TestClient(create_app(predictor, Limits(deadline_s=0.3)), raise_server_exceptions=False) as c:
        monkeypatch.setattr(predictor.codec, "predict", broken)
        response = c.post("/predict", json={"input": [1] * LENGTH})
        assert response.status_code == 500 and "RuntimeError: planted failure" in response.text
        monkeypatch.setattr(predictor.codec, "predict", slow)
        start = time.perf_counter()
        response = c.post("/predict", json={"input": [1] * LENGTH})
        assert response.status_code == 504 and "deadline of 0.3 s" in response.text
        assert time.perf_counter() - start < 0.9
        monkeypatch.undo()
        time.sleep(0.8)                                  # the slow call's thread lets go of the model
        assert c.post("/predict", json={"input": [1] * LENGTH}).status_code == 200


def test_health_and_ready_fail_for_a_model_that_cannot_answer(predictor):
    """Planted bug (the old server): /health said ok while every /predict answered 500."""
    model = reference_model_like(predictor)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    broken = Predictor(model, predictor.codec, predictor.info)
    with TestClient(create_app(broken), raise_server_exceptions=False) as c:
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "failing"
        assert "not finite" in health.json()["problem"]
        assert c.get("/ready").status_code == 503


def reference_model_like(predictor: Predictor):
    model = predictor.codec.new_model()
    model.load_state_dict(predictor.model.state_dict())
    return model.eval()


def test_concurrent_clients_get_their_own_answers(client, checkpoint_dir):
    inputs = [[(7 * t + i) % 10 for i in range(LENGTH)] for t in range(6)]
    alone = [client.post("/predict", json={"input": x}).json() for x in inputs]   # one at a time
    results: dict[int, list] = {t: [] for t in range(6)}

    def worker(t: int) -> None:
        for _ in range(5):
            body = client.post("/predict", json={"input": inputs[t]}).json()
            results[t].append((body.get("prediction"), body.get("attention")))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for t in range(6):
        want = expected_prediction(checkpoint_dir, inputs[t])
        # no crossed answers between threads: the attention read by hooks is this request's own
        assert results[t] == [(want, alone[t]["attention"])] * 5


def samples(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def test_metrics_count_requests_by_route_and_status_with_consistent_histograms(client):
    before = samples(client)
    client.get("/nowhere")
    client.post("/predict", json={"input": [1] * LENGTH})
    client.post("/predict", content=b"x" * (MAX_BODY + 1))
    after = samples(client)

    def delta(name, **labels):
        key = (name, frozenset(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("attnflex_requests_total", route="other", method="GET", status="404") == 1
    assert delta("attnflex_requests_total", route="/predict", method="POST", status="200") == 1
    assert delta("attnflex_requests_total", route="/predict", method="POST", status="413") == 1
    assert delta("attnflex_request_duration_seconds_count", route="/predict", status="413") == 1
    for (name, labels), value in after.items():
        if name == "attnflex_request_duration_seconds_count":
            buckets = sorted((float(dict(k[1])["le"]), v) for k, v in after.items()
                             if k[0] == "attnflex_request_duration_seconds_bucket"
                             and frozenset(kv for kv in k[1] if kv[0] != "le") == labels)
            counts = [v for _, v in buckets]
            assert counts == sorted(counts) and buckets[-1] == (float("inf"), value)
    info = next(dict(k[1]) for k in after if k[0] == "attnflex_model_info")
    assert info == {"task": "sort", "profile": "smoke", "step": "3"}


def test_each_app_counts_in_its_own_registry(predictor, client):
    """Planted bug: metrics in prometheus_client's global registry (a second app fails to build
    with "Duplicated timeseries", and /metrics would mix both apps' counts)."""
    before = client.app.state.metrics.requests("/predict", 200)
    with TestClient(create_app(predictor)) as other:
        other.post("/predict", json={"input": [1] * LENGTH})
        assert other.app.state.metrics.requests("/predict", 200) == 1
    assert client.app.state.metrics.requests("/predict", 200) == before


def _with_recorded_recipe(checkpoint_dir, tmp_path, recipe):
    """A copy of the checkpoint whose TrainConfig names ``recipe`` (None: an older checkpoint)."""
    ckpt = load_checkpoint(latest_checkpoint(checkpoint_dir))
    ckpt["config"]["recipe"] = recipe
    path = tmp_path / "step_00000003.pt"
    save_atomic(ckpt, path)
    return path


def test_a_checkpoint_names_its_recipe_and_profile_so_serve_needs_no_task(checkpoint_dir, tmp_path):
    assert load_checkpoint(latest_checkpoint(checkpoint_dir))["config"]["recipe"] == "sort/smoke"
    info = load_predictor(checkpoint_dir).info
    assert (info.task, info.profile) == ("sort", "smoke")
    # the record decides between networks that are alike: the same weights named as reverse
    assert load_predictor(_with_recorded_recipe(checkpoint_dir, tmp_path, "reverse/smoke")).info.task == "reverse"


def test_weights_that_fit_two_recipes_ask_for_the_task(checkpoint_dir, tmp_path):
    older = _with_recorded_recipe(checkpoint_dir, tmp_path, None)   # written before recipes were recorded
    with pytest.raises(ServeSetupError, match=r"\['reverse', 'sort'\].*--task"):
        load_predictor(older)
    assert load_predictor(older, task="sort").info.task == "sort"
    with pytest.raises(ServeSetupError, match="fit no servable recipe with task=digits"):
        load_predictor(checkpoint_dir, task="digits")
    with pytest.raises(ServeSetupError, match="not servable"):
        load_predictor(checkpoint_dir, task="nope")


def test_command_line_listens_with_a_long_backlog_and_drains_on_sigterm(checkpoint_dir):
    """The real server (uvicorn) in a subprocess. Planted bugs: a backlog of 5 (the standard
    library's), and SIGTERM closing the socket with a request still in flight."""
    cmd = [sys.executable, "-m", "attnflex_lab", "serve", "--checkpoint", str(checkpoint_dir),
           "--task", "sort", "--profile", "smoke", "--port", "0"]  # --profile: a faster start
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    conns: list[socket.socket] = []
    try:
        line = proc.stdout.readline()                     # bounded by the test's timeout mark
        match = re.match(r"serving sort \(smoke, step 3\) at http://127\.0\.0\.1:(\d+)$", line.strip())
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        address = ("127.0.0.1", int(match.group(1)))
        # 1. Backlog: with the server stopped, only the kernel's accept queue takes connections; a
        # queue of 5 completes ~6 handshakes and drops the other SYNs.
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            for _ in range(64):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(address)
                conns.append(sock)
            deadline, connected = time.monotonic() + 2.0, set()
            while len(connected) < len(conns) and time.monotonic() < deadline:
                _, writable, _ = select.select([], [c for c in conns if c not in connected], [], 0.1)
                connected |= {c for c in writable if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0}
            assert len(connected) == 64, f"only {len(connected)} of 64 connections were queued"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        for sock in conns:
            sock.close()
        # 2. Graceful shutdown: a request whose body is still coming when SIGTERM arrives is answered.
        body = json.dumps({"input": [1, 2, 3, 4, 5, 6]}).encode()
        with socket.create_connection(address, timeout=20) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
            with socket.create_connection(address, timeout=20) as other:   # once this is answered,
                other.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while other.recv(65536):                  # the loop has read the request above too
                    pass
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            sock.sendall(body[5:])
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert len(json.loads(reply.split(b"\r\n\r\n", 1)[1])["prediction"]) == LENGTH
    finally:
        if proc.poll() is None:
            proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped" in err, err
