"""Request counters and a latency histogram, rendered in the Prometheus text exposition format.

Only the standard library: a lock around plain dicts. Paths are labelled by route ("/predict",
"/health", "/metrics", or "other"), never by the raw path, so a scan of random URLs cannot grow
the label set without bound.
"""

from __future__ import annotations

import bisect
import threading
import time

# upper bounds (seconds) of the latency buckets; +Inf is implicit
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PREFIX = "attnflex"


def _labels(**labels) -> str:
    """{a="x",b="y"} with the text format's escaping (backslash, quote, newline)."""
    def esc(v) -> str:
        return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Thread-safe counts of requests (route, method, status), errors and latencies."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS, info: dict | None = None):
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError(f"latency buckets must be increasing, got {buckets}")
        self.buckets = tuple(buckets)
        self.info = dict(info or {})                    # e.g. task, profile: one gauge set to 1
        self.started = time.time()
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._hist: dict[str, list[int]] = {}            # route -> count per bucket (+Inf last)
        self._sum: dict[str, float] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request; 4xx and 5xx also count as errors of their class."""
        with self._lock:
            key = (route, method, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            if status >= 400:
                kind = "client" if status < 500 else "server"
                self._errors[(route, kind)] = self._errors.get((route, kind), 0) + 1
            counts = self._hist.setdefault(route, [0] * (len(self.buckets) + 1))
            counts[bisect.bisect_left(self.buckets, seconds)] += 1  # the first bucket with le >= seconds
            self._sum[route] = self._sum.get(route, 0.0) + seconds

    def requests(self, route: str | None = None, status: int | None = None) -> int:
        """Total requests counted, optionally for one route and/or status (for tests and logs)."""
        with self._lock:
            return sum(n for (r, _, s), n in self._requests.items()
                       if (route is None or r == route) and (status is None or s == str(status)))

    def render(self) -> str:
        """The metrics page (text/plain; version=0.0.4)."""
        with self._lock:
            requests, errors = dict(self._requests), dict(self._errors)
            hist, sums = {k: list(v) for k, v in self._hist.items()}, dict(self._sum)
        p = PREFIX
        lines = [f"# HELP {p}_requests_total HTTP requests handled, by route, method and status.",
                 f"# TYPE {p}_requests_total counter"]
        lines += [f"{p}_requests_total{_labels(route=r, method=m, status=s)} {n}"
                  for (r, m, s), n in sorted(requests.items())]
        lines += [f"# HELP {p}_request_errors_total Requests answered 4xx (client) or 5xx (server).",
                  f"# TYPE {p}_request_errors_total counter"]
        lines += [f"{p}_request_errors_total{_labels(route=r, kind=k)} {n}"
                  for (r, k), n in sorted(errors.items())]
        lines += [f"# HELP {p}_request_duration_seconds Time from request line to response sent.",
                  f"# TYPE {p}_request_duration_seconds histogram"]
        for route in sorted(hist):
            cumulative = 0
            for le, n in zip((*self.buckets, "+Inf"), hist[route], strict=True):
                cumulative += n
                lines.append(f"{p}_request_duration_seconds_bucket{_labels(route=route, le=le)} "
                             f"{cumulative}")
            lines.append(f"{p}_request_duration_seconds_sum{_labels(route=route)} {sums[route]:.6f}")
            lines.append(f"{p}_request_duration_seconds_count{_labels(route=route)} {cumulative}")
        if self.info:
            lines += [f"# HELP {p}_model_info The served model (value always 1).",
                      f"# TYPE {p}_model_info gauge", f"{p}_model_info{_labels(**self.info)} 1"]
        lines += [f"# HELP {p}_uptime_seconds Seconds since the server started.",
                  f"# TYPE {p}_uptime_seconds gauge", f"{p}_uptime_seconds {time.time() - self.started:.3f}"]
        return "\n".join(lines) + "\n"
