"""Load test of ``python -m attnflex_lab serve``: keep-alive and new-connection clients, 32 each.

A smoke checkpoint of a recipe is trained in a temporary folder (or ``--checkpoint`` is served), the
server runs as its own process on 127.0.0.1 (a free port; nothing leaves this machine), and client
threads here send ``POST /predict`` for a fixed time in two modes:

- keep-alive: each client reuses one connection (what a well-behaved client library does);
- new connection per request: each request opens and closes its own TCP connection, which is what
  fills a short listen backlog (the standard library's 5 dropped connections under this load).

Each mode prints requests/s, p50/p99/max latency and errors (refused or reset connections,
timeouts, non-200 answers). The reference is the same prediction in this process without HTTP
(batch 1). The 200s counted on ``/metrics`` must equal the successes the clients saw. Ends with
one JSON line; exits 1 on any error.

    .venv/bin/python benchmarks/bench_serve.py                          # sort, 32 clients, 10 s/mode
    .venv/bin/python benchmarks/bench_serve.py --task digits --clients 16 --seconds 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from attnflex_lab import recipes
from attnflex_lab.serve import load_predictor

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"                     # loopback only
SOCKET_TIMEOUT_S = 10.0                # a request that takes longer counts as an error


def start_server(checkpoint: str, task: str, timeout: float) -> tuple[subprocess.Popen, int]:
    """The serve command in its own process; returns (process, port) once it listens."""
    cmd = [sys.executable, "-m", "attnflex_lab", "serve", "--checkpoint", checkpoint, "--task", task,
           "--host", HOST, "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    timer = threading.Timer(timeout, proc.kill)          # a server that never starts cannot hang us
    timer.start()
    line = proc.stdout.readline()
    timer.cancel()
    match = re.search(r"at http://[\d.]+:(\d+)$", line.strip())
    if not match:
        proc.kill()
        raise SystemExit(f"the server did not start (exit {proc.wait()}): {line!r}")
    return proc, int(match.group(1))


def client(port: int, body: bytes, keep_alive: bool, stop_at: float, latencies: list, errors: list) -> None:
    """Requests until ``stop_at``, each timed from connect (new-connection mode) or send to the
    last byte read. Errors are recorded by kind and the client goes on."""
    headers = {"Content-Type": "application/json"}
    if not keep_alive:
        headers["Connection"] = "close"
    conn = None
    while time.perf_counter() < stop_at:
        start = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT_S)
            conn.request("POST", "/predict", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except OSError as err:                          # refused, reset, timed out: count, reconnect
            errors.append(type(err).__name__)
            conn.close()
            conn = None
            continue
        latencies.append(time.perf_counter() - start)
        if resp.status != 200:
            errors.append(f"HTTP {resp.status}")
        if not keep_alive or resp.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def load(port: int, body: bytes, clients: int, seconds: float, keep_alive: bool) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(port, body, keep_alive, stop_at, latencies, errors))
               for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 2 * SOCKET_TIMEOUT_S)
    wall = time.perf_counter() - start
    ms = 1e3 * np.array(latencies) if latencies else np.array([float("nan")])
    kinds = {k: errors.count(k) for k in sorted(set(errors))}
    return {"mode": "keep-alive" if keep_alive else "new connection", "clients": clients,
            "answered": len(latencies), "errors": len(errors), "error_kinds": kinds,
            "ok": len(latencies) - sum(n for k, n in kinds.items() if k.startswith("HTTP")),
            "requests_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def metrics_ok_count(port: int) -> int:
    """POST /predict answered 200, summed over label sets (any label order)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT_S)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    total = 0
    for labels, value in re.findall(r"^attnflex_requests_total\{([^}]*)\} (\S+)$", text, re.M):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if pairs.get("route") == "/predict" and pairs.get("method") == "POST" and pairs.get("status") == "200":
            total += int(float(value))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="sort", help="recipe to train a smoke checkpoint of")
    parser.add_argument("--checkpoint", default=None, help="serve this checkpoint instead (give --task)")
    parser.add_argument("--clients", type=int, default=32, help="client threads per mode")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each mode's run")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds for the server to start")
    args = parser.parse_args()
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 600:
        raise SystemExit("error: --clients must be in 1..256 and --seconds in (0, 600]")
    torch.set_num_threads(1)          # as the server runs (serve --threads 1), for a fair reference
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            recipes.train_recipe(args.task, profile_name="smoke", steps=5, checkpoint_dir=tmp,
                                 progress=False)
            checkpoint = tmp
        predictor = load_predictor(checkpoint, task=args.task)
        body_dict = {"input": predictor.codec.example()}
        body = json.dumps(body_dict).encode()
        # the reference: the same prediction in this process, no HTTP, batch 1
        for _ in range(5):
            predictor.predict(body_dict)
        in_process = []
        for _ in range(50):
            start = time.perf_counter()
            predictor.predict(body_dict)
            in_process.append(time.perf_counter() - start)
        proc, port = start_server(checkpoint, args.task, args.start_timeout)
        try:
            load(port, body, 1, 1.0, keep_alive=True)                      # warm-up
            before = metrics_ok_count(port)
            rows = [load(port, body, args.clients, args.seconds, keep_alive=True),
                    load(port, body, args.clients, args.seconds, keep_alive=False)]
            counted = metrics_ok_count(port) - before
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ref_ms = 1e3 * statistics.median(in_process)
    seen_ok = sum(r["ok"] for r in rows)
    result = {"task": args.task, "python": platform.python_version(), "seconds_per_mode": args.seconds,
              "in_process_p50_ms": ref_ms, "runs": rows, "metrics_counted_ok": counted,
              "clients_saw_ok": seen_ok}
    print(f"serve {args.task}: in-process predict (batch 1) p50 {ref_ms:.2f} ms; "
          f"{args.clients} clients x {args.seconds:g} s per mode, on {HOST}")
    for r in rows:
        print(f"  {r['mode']:>15}: {r['requests_per_s']:7.1f} req/s, p50 {r['p50_ms']:7.2f} ms, "
              f"p99 {r['p99_ms']:7.2f} ms, max {r['max_ms']:8.2f} ms, {r['errors']} errors "
              f"{r['error_kinds'] or ''}")
    print(f"  /metrics counted {counted} answers 200; the clients saw {seen_ok}")
    print(json.dumps(result))
    ok = all(r["errors"] == 0 for r in rows) and counted == seen_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
