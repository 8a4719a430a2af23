"""The HTTP server: standard library ``ThreadingHTTPServer``, JSON in and out.

    POST /predict   {"input": ...}  ->  {"task", "prediction", "attention": {...}, "model_ms"}
    GET  /health    the served model (task, profile, step, parameters) and what "input" must be
    GET  /metrics   Prometheus text format: requests by route/method/status, errors, latency

Every failure is answered with ``{"error": "..."}`` and a 4xx (the client's fault) or a 500 (ours),
and the server goes on serving: a bad request costs one response, never the process.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..recipes.codecs import InputError
from .metrics import Metrics
from .predictor import Predictor

MAX_BODY_BYTES = 64 * 1024     # a 64-pixel image or a prompt is far smaller; refuse anything bigger
ROUTES = {"/predict": "POST", "/health": "GET", "/metrics": "GET"}


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class ModelServer(ThreadingHTTPServer):
    """Holds the predictor and the metrics that every request handler shares."""

    daemon_threads = True                  # a hung client never keeps the process alive
    allow_reuse_address = True

    def __init__(self, address, predictor: Predictor, *, max_body: int = MAX_BODY_BYTES,
                 log_requests: bool = False):
        super().__init__(address, Handler)
        self.predictor, self.max_body, self.log_requests = predictor, max_body, log_requests
        info = predictor.info
        self.metrics = Metrics(info={"task": info.task, "profile": info.profile, "step": info.step})

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"          # keep-alive: a load test reuses its connections
    timeout = 15                           # seconds a client may take to send its request
    # One write per response, sent at once: headers and body written apart meet Nagle's algorithm
    # and the client's delayed ACK, which held every keep-alive response back by 40 ms.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    # --- dispatch -------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        start = time.perf_counter()
        self._body_read, self._extra_headers = False, {}
        path = self.path.split("?", 1)[0]
        route = path if path in ROUTES else "other"
        try:
            if path not in ROUTES:
                raise HTTPError(HTTPStatus.NOT_FOUND, f"no route {path!r}; routes: "
                                + ", ".join(f"{m} {p}" for p, m in ROUTES.items()))
            if method != ROUTES[path]:
                raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED,
                                f"{path} takes {ROUTES[path]}, not {method}", {"Allow": ROUTES[path]})
            status, body, content_type = getattr(self, "_" + path.strip("/"))()
            data = _encode(body)
        except HTTPError as err:
            status, data, content_type = err.status, _encode({"error": err.message}), "application/json"
            self._extra_headers = err.headers
        except Exception as err:  # a bug or a model failure: answer 500, log it, keep serving
            traceback.print_exc(file=sys.stderr)
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, "application/json"
            data = _encode({"error": f"internal error: {type(err).__name__}: {err}"})
        if not self._body_read and self.headers.get("Content-Length", "0") != "0":
            self.close_connection = True   # an unread body must not be taken for the next request
        self._send(status, data, content_type)
        self.server.metrics.observe(route, method, int(status), time.perf_counter() - start)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._handle("PATCH")

    # --- routes: each returns (status, body, content type) --------------------------------------

    def _predict(self):
        request = self._read_json()
        try:
            return HTTPStatus.OK, self.server.predictor.predict(request), "application/json"
        except InputError as err:
            raise HTTPError(HTTPStatus.UNPROCESSABLE_ENTITY, str(err)) from None

    def _health(self):
        info, codec = self.server.predictor.info, self.server.predictor.codec
        return HTTPStatus.OK, {"status": "ok", "task": info.task, "profile": info.profile,
                               "step": info.step, "n_params": info.n_params,
                               "input": codec.input_doc, "example": {"input": codec.example()}}, \
            "application/json"

    def _metrics(self):
        return HTTPStatus.OK, self.server.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"

    # --- reading and writing --------------------------------------------------------------------

    def _read_json(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, "
                                                        "not chunked")
        if length is None:
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "POST /predict needs a Content-Length header")
        try:
            n_bytes = int(length)
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"Content-Length {length!r} is not a number") from None
        if n_bytes < 0:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"Content-Length {n_bytes} is negative")
        if n_bytes > self.server.max_body:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"body of {n_bytes} bytes is over the limit of {self.server.max_body}")
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        raw = self.rfile.read(n_bytes)     # read even when refusing it below, so keep-alive stays in step
        self._body_read = True
        if content_type != "application/json":
            raise HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                            f"send JSON (Content-Type: application/json), not {content_type!r}")
        if len(raw) != n_bytes:
            self.close_connection = True
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"body ended after {len(raw)} of {n_bytes} bytes")
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"body is not UTF-8: {err.reason} at byte "
                                                    f"{err.start}") from None
        except json.JSONDecodeError as err:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {err.msg} at line "
                                                    f"{err.lineno} column {err.colno}") from None

    def _send(self, status: HTTPStatus, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in getattr(self, "_extra_headers", {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
        if self.server.log_requests:
            super().log_message(format, *args)


def _encode(body) -> bytes:
    """A str as is, anything else as JSON (NaN refused: it is not JSON, and a model giving NaN is a
    failure to report, not a number to send)."""
    return (body if isinstance(body, str) else json.dumps(body, allow_nan=False)).encode("utf-8")


def make_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, **options) -> ModelServer:
    """A bound (not yet serving) server; port 0 picks a free port (read it from ``server.url``)."""
    return ModelServer((host, port), predictor, **options)
