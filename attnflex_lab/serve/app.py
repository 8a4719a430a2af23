"""The HTTP app: FastAPI routes over a Predictor, served by uvicorn (``serve.cli``).

    POST /predict   {"input": ...}  ->  {"task", "prediction", "attention": {...}, "model_ms"}
    GET  /health    the model (task, profile, step, parameters, checked at load) and an example
    GET  /ready     200 once the model answers its self-test, 503 otherwise
    GET  /metrics   Prometheus text (prometheus_client): requests by route/method/status, latency
    GET  /docs      the OpenAPI page FastAPI builds from the pydantic models

A client's mistake is a 4xx naming what is wrong (422 with the field for a bad request), a model
failure a 500; either way the server goes on serving. Body size, JSON depth, long numbers and a
deadline are enforced before parsing by ``limits.RequestLimits``.
"""

from __future__ import annotations

import sys
import time
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .codecs import InputError
from .limits import Limits, RequestLimits
from .metrics import Metrics
from .predictor import Predictor
from .schemas import Health, PredictRequest, PredictResponse, Ready

ROUTES = ("/predict", "/health", "/ready", "/metrics", "/docs", "/openapi.json")


class MetricsMiddleware:
    """ASGI middleware outside everything else, so refusals (413, 504) are counted and timed too."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_recorded(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        finally:
            self.metrics.observe(scope["path"], scope["method"], status, time.perf_counter() - start)


def create_app(predictor: Predictor, limits: Limits | None = None) -> FastAPI:
    """A FastAPI app answering with ``predictor``; it runs the model's self-test once here."""
    limits = limits or Limits()
    info = predictor.info
    problem = predictor.self_test()
    app = FastAPI(title=f"attnflex-lab: {info.task} ({info.profile}, step {info.step})",
                  description="A lab checkpoint served with its attention weights (lesson 12).")
    app.state.predictor, app.state.problem = predictor, problem
    app.state.metrics = metrics = Metrics(ROUTES, info={"task": info.task, "profile": info.profile,
                                                        "step": info.step})

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_unset=True)
    def predict(body: PredictRequest):
        # a plain def: FastAPI runs it in a worker thread, so the event loop keeps accepting
        try:
            return predictor.predict(body.model_dump(exclude_unset=True))
        except InputError as err:
            return _unprocessable(err.field, str(err))
        except Exception as err:  # a bug or a model failure: answer 500, log it, keep serving
            traceback.print_exc(file=sys.stderr)
            return JSONResponse({"detail": f"internal error: {type(err).__name__}: {err}"},
                                status_code=500)

    @app.get("/health", response_model=Health)
    def health():
        codec = predictor.codec
        body = Health(status="ok" if problem is None else "failing", task=info.task,
                      profile=info.profile, step=info.step, n_params=info.n_params,
                      verified=info.verified, input=codec.input_doc,
                      example={"input": codec.example()}, problem=problem)
        return JSONResponse(body.model_dump(), status_code=200 if problem is None else 503)

    @app.get("/ready", response_model=Ready)
    def ready():
        return JSONResponse(Ready(ready=problem is None, problem=problem).model_dump(),
                            status_code=200 if problem is None else 503)

    @app.get("/metrics", include_in_schema=False)
    def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        # FastAPI's own 422, with the offending field first in the message
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]
        return JSONResponse({"detail": details}, status_code=422)

    app.add_middleware(RequestLimits, limits=limits)
    app.add_middleware(MetricsMiddleware, metrics=metrics)   # added last: the outermost
    return app


def _unprocessable(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]},
                        status_code=422)
