"""Prometheus metrics of the server through ``prometheus_client``, in a registry of the app's own.

A registry per app (not the library's global one) lets two apps live in one process (the tests
build several) without "duplicated timeseries" errors, and /metrics shows only this app's numbers.
Paths are labelled by route ("/predict", ..., or "other"), never by the raw path, and methods from a
fixed set, so a scan of random URLs cannot grow the label set without bound.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info, generate_latest

# upper bounds (seconds) of the latency buckets; +Inf is implicit
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PREFIX = "attnflex"
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


class Metrics:
    """Request counts by (route, method, status) and latency histograms by (route, status)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, routes, info: dict | None = None, buckets=LATENCY_BUCKETS):
        self.routes = frozenset(routes)
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(f"{PREFIX}_requests", "HTTP requests answered",
                                 ("route", "method", "status"), registry=self.registry)
        self._latency = Histogram(f"{PREFIX}_request_duration_seconds",
                                  "time from a request's arrival to its response",
                                  ("route", "status"), buckets=buckets, registry=self.registry)
        if info:
            Info(f"{PREFIX}_model", "the served model", registry=self.registry).info(
                {k: str(v) for k, v in info.items()})

    def route_label(self, path: str) -> str:
        return path if path in self.routes else "other"

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        route = self.route_label(path)
        self._requests.labels(route, method if method in KNOWN_METHODS else "other", str(status)).inc()
        self._latency.labels(route, str(status)).observe(seconds)

    def requests(self, route: str, status: int) -> float:
        """Requests answered on ``route`` with ``status``, all methods (for tests and benchmarks)."""
        return sum(self.registry.get_sample_value(f"{PREFIX}_requests_total",
                                                  {"route": route, "method": m, "status": str(status)}) or 0.0
                   for m in (*KNOWN_METHODS, "other"))

    def render(self) -> bytes:
        return generate_latest(self.registry)
