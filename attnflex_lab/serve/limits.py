"""What a request may be, checked on its raw bytes before any JSON parser sees them.

``json.loads`` recurses once per nesting level (``"[" * 60000`` is a RecursionError) and refuses
integers of more than 4,300 digits with a ValueError: both are exceptions a server must not meet
as 500s. So the body is read here (at most ``max_body`` bytes, refused with 413 beyond), its
nesting depth and its longest digit run are measured outside strings with numpy (no recursion,
no per-character Python loop), and only then does FastAPI parse it. The same middleware gives every
request a deadline: a response not started in ``deadline_s`` seconds is a 504.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass

import numpy as np

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)   # a JSON string, escapes included


@dataclass(frozen=True)
class Limits:
    max_body: int = 64 * 1024     # bytes; a 16x16 canvas or a prompt is far smaller
    max_depth: int = 32           # [[...]] levels; the deepest real input (image rows) has 2
    max_digits: int = 64          # digits in one number; a float64 needs 17
    deadline_s: float = 30.0      # seconds from the request's arrival to its response's start

    def __post_init__(self):
        for name in ("max_body", "max_depth", "max_digits"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, got {self.deadline_s}")


class BodyRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def check_json_shape(raw: bytes, limits: Limits) -> None:
    """Raise BodyRefused if ``raw`` nests deeper than ``max_depth`` or holds a number with more than
    ``max_digits`` digits (strings' contents do not count: "[[[" inside quotes is text)."""
    outside = _STRING.sub(b'""', raw)                        # bytes outside strings
    codes = np.frombuffer(outside, dtype=np.uint8)
    opens = (codes == ord("[")) | (codes == ord("{"))
    closes = (codes == ord("]")) | (codes == ord("}"))
    depth = int(np.cumsum(opens.astype(np.int64) - closes).max(initial=0))
    if depth > limits.max_depth:
        raise BodyRefused(400, f"the JSON body nests {depth} levels deep; the limit is {limits.max_depth}")
    run = re.search(rb"\d{%d,}" % (limits.max_digits + 1), outside)
    if run:
        raise BodyRefused(400, f"the JSON body holds a number of {len(run.group())}+ digits; the "
                               f"limit is {limits.max_digits}")


class RequestLimits:
    """ASGI middleware: body size, JSON shape and Content-Type of bodies; a deadline for all."""

    def __init__(self, app, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self._handle(scope, receive, send_tracked), self.limits.deadline_s)
        except asyncio.TimeoutError:  # noqa: UP041 (a different class before Python 3.11)
            if not started:
                await _send_error(send, 504, f"no answer within the deadline of "
                                             f"{self.limits.deadline_s:g} s")

    async def _handle(self, scope, receive, send):
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        try:
            raw = await self._read_body(scope, receive)
        except BodyRefused as refused:
            return await _send_error(send, refused.status, refused.message)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:                                      # the app waits for a disconnect
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)

    async def _read_body(self, scope, receive) -> bytes:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise BodyRefused(415, f"send JSON (Content-Type: application/json), not {content_type!r}")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limits.max_body:
            raise BodyRefused(413, f"a body of {declared} bytes is over the limit of {self.limits.max_body}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BodyRefused(400, "the client went away before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body:                  # chunked bodies have no length up front
                raise BodyRefused(413, f"the body is over the limit of {self.limits.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        check_json_shape(raw, self.limits)
        return raw


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
