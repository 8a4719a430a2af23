"""Load test of ``python -m attnflex_lab serve``: N concurrent clients, p50/p99 latency, no errors.

A smoke checkpoint of a recipe is trained in a temporary folder (or ``--checkpoint`` is served), the
server runs as its own process on 127.0.0.1 (a free port), and client threads here send
``POST /predict`` over keep-alive connections. The reference is the same prediction called in this
process without HTTP (batch 1): the ratio http / in-process is what the server adds. The request
count on ``/metrics`` must equal what the clients sent. Ends with one JSON line; exits 1 on any error.

    .venv/bin/python benchmarks/bench_serve.py                          # sort, 8 clients x 50
    .venv/bin/python benchmarks/bench_serve.py --task digits --clients 16 --requests 100
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

from attnflex_lab import recipes
from attnflex_lab.serve import load_predictor

ROOT = Path(__file__).resolve().parents[1]


def start_server(checkpoint: str, task: str, timeout: float) -> tuple[subprocess.Popen, str, int]:
    """The serve command in its own process; returns (process, host, port) once it listens."""
    cmd = [sys.executable, "-m", "attnflex_lab", "serve", "--checkpoint", checkpoint, "--task", task,
           "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    timer = threading.Timer(timeout, proc.kill)          # a server that never starts cannot hang us
    timer.start()
    line = proc.stdout.readline()
    timer.cancel()
    match = re.search(r"at http://([\d.]+):(\d+)$", line.strip())
    if not match:
        proc.kill()
        raise SystemExit(f"the server did not start (exit {proc.wait()}): {line!r}")
    return proc, match.group(1), int(match.group(2))


def client(host: str, port: int, body: bytes, n: int, latencies: list, errors: list) -> None:
    """``n`` requests over one keep-alive connection, each timed from send to last byte read."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    try:
        for _ in range(n):
            start = time.perf_counter()
            try:
                conn.request("POST", "/predict", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except OSError as err:                      # a dropped connection counts, then reconnect
                errors.append(repr(err))
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                continue
            latencies.append(time.perf_counter() - start)
            if resp.status != 200:
                errors.append(resp.status)
    finally:
        conn.close()


def load(host: str, port: int, body: bytes, clients: int, per_client: int) -> dict:
    latencies: list[float] = []
    errors: list = []
    threads = [threading.Thread(target=client, args=(host, port, body, per_client, latencies, errors))
               for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = 1e3 * np.array(latencies)
    return {"clients": clients, "requests": clients * per_client, "errors": len(errors),
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
            "requests_per_s": len(latencies) / wall}


def metrics_count(host: str, port: int) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(int(float(v)) for v in re.findall(
        r'^attnflex_requests_total\{route="/predict",method="POST",status="\d+"\} (\S+)$', text, re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="sort", help="recipe to train a smoke checkpoint of")
    parser.add_argument("--checkpoint", default=None, help="serve this checkpoint instead (give --task)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds for the server to start")
    args = parser.parse_args()
    if args.clients <= 0 or args.requests <= 0:
        raise SystemExit("--clients and --requests must be positive")
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
        proc, host, port = start_server(checkpoint, args.task, args.start_timeout)
        try:
            load(host, port, body, 1, 5)                                  # warm-up
            sent_before = metrics_count(host, port)
            serial = load(host, port, body, 1, args.requests)
            concurrent = load(host, port, body, args.clients, args.requests)
            counted = metrics_count(host, port) - sent_before
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ref_ms = 1e3 * statistics.median(in_process)
    result = {"task": args.task, "python": platform.python_version(),
              "in_process_p50_ms": ref_ms, "serial": serial, "concurrent": concurrent,
              "http_over_in_process_p50": serial["p50_ms"] / ref_ms,
              "metrics_counted": counted, "sent": serial["requests"] + concurrent["requests"]}
    print(f"serve {args.task}: in-process predict (batch 1) p50 {ref_ms:.2f} ms")
    for name, row in (("1 client", serial), (f"{args.clients} clients", concurrent)):
        print(f"  {name:>10}: {row['requests']} requests, p50 {row['p50_ms']:.2f} ms, "
              f"p99 {row['p99_ms']:.2f} ms, {row['requests_per_s']:.0f} req/s, {row['errors']} errors")
    print(f"  ratio http / in-process (p50, 1 client) = {result['http_over_in_process_p50']:.2f}; "
          f"/metrics counted {counted} of {result['sent']} requests")
    print(json.dumps(result))
    ok = serial["errors"] == concurrent["errors"] == 0 and counted == result["sent"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
