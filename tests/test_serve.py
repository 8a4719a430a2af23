"""``python -m attnflex_lab serve``: a smoke checkpoint from the training code, served on 127.0.0.1.

One server (in a thread, port 0) is shared by the module; one test starts the real command line in
a subprocess. Every socket has a timeout and every test a pytest-timeout bound.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from attnflex_lab import recipes
from attnflex_lab.models.transformer import SequenceEncoder
from attnflex_lab.modules import run_with_cache
from attnflex_lab.recipes import sequence
from attnflex_lab.serve import Metrics, ServeSetupError, load_predictor, make_server
from attnflex_lab.training.checkpoint import latest_checkpoint, load_checkpoint, save_atomic

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]
LENGTH = 6                                   # sort's sequence length in the smoke profile


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory) -> Path:
    """A few steps of the sort recipe, smoke profile, through the same call the train CLI makes."""
    folder = tmp_path_factory.mktemp("sort_ckpt")
    recipes.train_recipe("sort", profile_name="smoke", seed=0, steps=3, checkpoint_dir=str(folder),
                         progress=False)
    return folder


@pytest.fixture(scope="module")
def server(checkpoint_dir):
    srv = make_server(load_predictor(checkpoint_dir, task="sort"), "127.0.0.1", 0, max_body=4096)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def request(srv, method: str, path: str, body=None, headers=None) -> tuple[int, dict | str, dict]:
    """(status, parsed JSON or text, headers) over a fresh connection."""
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        raw = resp.read().decode()
        is_json = resp.getheader("Content-Type", "").startswith("application/json")
        return resp.status, json.loads(raw) if is_json else raw, dict(resp.getheaders())
    finally:
        conn.close()


def raw_exchange(srv, data: bytes) -> str:
    """Send bytes as they are (for requests http.client will not make) and read the reply."""
    with socket.create_connection(srv.server_address[:2], timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def reference_model(checkpoint_dir) -> SequenceEncoder:
    """The checkpoint's network, rebuilt here without the server's code."""
    state = torch.load(latest_checkpoint(checkpoint_dir), weights_only=True)["model"]
    model = SequenceEncoder(sequence.model_config("smoke", LENGTH))
    model.load_state_dict(state)
    return model.eval()


def expected_prediction(checkpoint_dir, digits: list[int]) -> list[int]:
    with torch.no_grad():
        return reference_model(checkpoint_dir)(torch.tensor([digits])).argmax(-1)[0].tolist()


def test_predict_answers_with_the_checkpoints_model_and_its_attention(server, checkpoint_dir):
    digits = [5, 0, 3, 3, 9, 1]
    status, body, _ = request(server, "POST", "/predict", {"input": digits})
    assert status == 200, body
    assert body["task"] == "sort"
    assert body["prediction"] == expected_prediction(checkpoint_dir, digits)
    attention = body["attention"]
    assert attention["axes"] == ["layer", "head", "output", "input"]
    weights = torch.tensor(attention["weights"])
    assert list(weights.shape) == attention["shape"] == [2, 4, LENGTH, LENGTH]
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, LENGTH), atol=1e-3, rtol=0)
    with torch.no_grad():
        _, cache = run_with_cache(reference_model(checkpoint_dir), torch.tensor([digits]))
    want = cache.patterns()[:, 0]                         # (L, 1, H, T, S) -> (L, H, T, S)
    torch.testing.assert_close(weights, want, atol=1e-5, rtol=0)  # the server rounds to 5 decimals


def test_health_describes_the_model_and_its_example_input_works(server):
    status, body, _ = request(server, "GET", "/health")
    assert status == 200
    assert (body["status"], body["task"], body["profile"], body["step"]) == ("ok", "sort", "smoke", 3)
    assert body["n_params"] > 1000
    status, answer, _ = request(server, "POST", "/predict", body["example"])
    assert status == 200 and len(answer["prediction"]) == LENGTH


BAD_REQUESTS = [  # (body, extra headers, status, words the error must contain)
    (b'{"input": [1, 2', {}, 400, "not valid JSON"),
    (b"\xff\xfe", {}, 400, "not UTF-8"),
    ([1, 2, 3], {}, 422, "JSON object"),
    ({"inputs": [1] * LENGTH}, {}, 422, 'needs an "input" field'),
    ({"input": [1] * LENGTH, "temperature": 2}, {}, 422, "unknown request fields ['temperature']"),
    ({"input": [1, 2, 3]}, {}, 422, f"exactly {LENGTH} digits"),
    ({"input": "123456"}, {}, 422, "got str"),
    ({"input": [1, "2", 3, 4, 5, 6]}, {}, 422, "input[1] must be an integer"),
    ({"input": [1, 2, 3, 4, 5, 1.5]}, {}, 422, "input[5] must be an integer"),
    ({"input": [1, 2, True, 4, 5, 6]}, {}, 422, "input[2] must be an integer"),
    ({"input": [1, 2, 3, 4, 5, 12]}, {}, 422, "input[5] = 12 is outside 0..9"),
    ({"input": [1] * 5000}, {}, 413, "over the limit of 4096"),
    (b"input=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "send JSON"),
]


@pytest.mark.parametrize(("body", "headers", "status", "words"), BAD_REQUESTS,
                         ids=[f"{s}-{w[:18]}" for _, _, s, w in BAD_REQUESTS])
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(server, body, headers, status, words):
    got, answer, _ = request(server, "POST", "/predict", body, headers)
    assert got == status, answer
    assert words in answer["error"]
    assert request(server, "POST", "/predict", {"input": [1] * LENGTH})[0] == 200


def test_unknown_routes_methods_and_missing_lengths(server):
    status, body, _ = request(server, "GET", "/predict/../etc")
    assert status == 404 and "routes: POST /predict" in body["error"]
    status, body, headers = request(server, "GET", "/predict")
    assert status == 405 and headers["Allow"] == "POST" and "takes POST, not GET" in body["error"]
    assert request(server, "DELETE", "/health")[0] == 405
    reply = raw_exchange(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                 b"\r\n\r\n")
    assert reply.startswith("HTTP/1.1 411") and "Content-Length header" in reply
    reply = raw_exchange(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999"
                                 b"\r\n\r\n{")      # declared huge, never sent: refused unread
    assert reply.startswith("HTTP/1.1 413") and "Connection: close" in reply
    reply = raw_exchange(server, b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith("HTTP/1.1 405") and '"error": "/health takes GET, not BREW"' in reply
    reply = raw_exchange(server, b"GET /health HTTP/9.9 extra\r\n\r\n")   # malformed request line:
    assert reply.startswith('{"error": "Bad request version')      # no version, so no status line
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    reply = raw_exchange(server, b"GET /health HTTP/1.1\r\n" + many + b"\r\n")
    assert reply.startswith("HTTP/1.1 431") and '{"error": "Too many headers' in reply
    assert request(server, "GET", "/health")[0] == 200


def test_a_failing_model_gets_a_500_and_the_server_goes_on(server, monkeypatch):
    def broken(model, inputs, **options):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(server.predictor.codec, "predict", broken)
    status, body, _ = request(server, "POST", "/predict", {"input": [1] * LENGTH})
    assert status == 500 and "RuntimeError: planted failure" in body["error"]
    monkeypatch.undo()
    assert request(server, "POST", "/predict", {"input": [1] * LENGTH})[0] == 200


SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf)$')


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text page; fails on a line that is neither comment nor sample."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.group(1), match.group(2) or "{}", match.group(3)
        assert any(name == t or name.startswith(t + "_") for t in typed), f"{name} has no # TYPE"
        pairs = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', labels))
        samples[name, pairs] = float(value)
    return samples


def predict_ok_count(server) -> float:
    status, text, headers = request(server, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_metrics(text)
    key = ("attnflex_requests_total", frozenset({("route", "/predict"), ("method", "POST"),
                                                 ("status", "200")}))
    return samples.get(key, 0.0)


def test_concurrent_clients_all_succeed_and_metrics_count_them(server, checkpoint_dir):
    before = predict_ok_count(server)
    inputs = [[(7 * t + i) % 10 for i in range(LENGTH)] for t in range(8)]
    alone = [request(server, "POST", "/predict", {"input": x})[1] for x in inputs]  # one at a time
    results: dict[int, list] = {t: [] for t in range(8)}

    def client(t: int) -> None:
        for _ in range(10):
            status, body, _ = request(server, "POST", "/predict", {"input": inputs[t]})
            results[t].append((status, body["prediction"] if status == 200 else body,
                               body.get("attention")))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    for t in range(8):
        want = expected_prediction(checkpoint_dir, inputs[t])
        # no crossed answers between threads: the attention read by hooks is this request's own
        assert results[t] == [(200, want, alone[t]["attention"])] * 10
    assert predict_ok_count(server) - before == 80 + 8


def test_metrics_page_parses_and_its_histogram_is_consistent(server):
    request(server, "GET", "/nowhere")
    samples = parse_metrics(request(server, "GET", "/metrics")[1])
    errors = {dict(k[1])["route"]: v for k, v in samples.items() if k[0] == "attnflex_request_errors_total"}
    assert errors["other"] >= 1
    for route in ("/predict", "/health", "other"):
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                          if k[0] == "attnflex_request_duration_seconds_bucket"
                          and dict(k[1])["route"] == route))
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and buckets[-1][0] == float("inf")
        total = sum(v for k, v in samples.items()
                    if k[0] == "attnflex_requests_total" and dict(k[1])["route"] == route)
        count = samples["attnflex_request_duration_seconds_count", frozenset({("route", route)})]
        assert counts[-1] == count == total
    info = next(dict(k[1]) for k in samples if k[0] == "attnflex_model_info")
    assert info == {"task": "sort", "profile": "smoke", "step": "3"}


def test_latency_buckets_count_each_observation_once_at_its_upper_bound():
    metrics = Metrics(buckets=(0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 3.0):             # 0.01 sits exactly on a bound: le="0.01"
        metrics.observe("/predict", "POST", 200, seconds)
    metrics.observe("/predict", "POST", 422, 0.001)
    samples = parse_metrics(metrics.render())
    def bucket(le):
        return samples["attnflex_request_duration_seconds_bucket",
                       frozenset({("route", "/predict"), ("le", le)})]
    assert (bucket("0.01"), bucket("0.1"), bucket("+Inf")) == (3, 4, 5)
    assert samples["attnflex_request_errors_total", frozenset({("route", "/predict"), ("kind", "client")})] == 1
    assert metrics.requests("/predict", 200) == 4
    with pytest.raises(ValueError, match="increasing"):
        Metrics(buckets=(0.1, 0.01))


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


def test_command_line_serves_until_terminated(checkpoint_dir):
    cmd = [sys.executable, "-m", "attnflex_lab", "serve", "--checkpoint", str(checkpoint_dir),
           "--task", "sort", "--profile", "smoke", "--port", "0"]  # --profile: a faster start
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    try:
        line = proc.stdout.readline()                     # bounded by the test's timeout mark
        match = re.match(r"serving sort \(smoke, step 3\) at http://127\.0\.0\.1:(\d+)$", line.strip())
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        conn.request("POST", "/predict", body=json.dumps({"input": [1, 2, 3, 4, 5, 6]}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and len(json.loads(resp.read())["prediction"]) == LENGTH
        conn.close()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err                      # SIGTERM closes the server cleanly
