"""The JSON that /predict, /health and /ready take and give, as pydantic models.

FastAPI validates a request against ``PredictRequest`` before the route runs, so a missing or
unknown field is a 422 whose ``detail`` names it (``["body", "max_new_tokens"]``), and /docs shows
every model. What ``input`` must hold depends on the served recipe (pixels, digits, a date, a
prompt): its codec checks it and a refusal is a 422 naming ``input`` too.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

InputValue = str | list[Any]                  # pixels (flat or rows), digits, or text


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: InputValue = Field(description="what the served recipe reads; GET /health shows an example")
    max_new_tokens: StrictInt | None = Field(None, description="lm only: characters to generate")


class Attention(BaseModel):
    model_config = ConfigDict(extra="allow")  # labels differ per recipe (query, input_labels, ...)

    weights: list[Any] = Field(description="nested lists of the given shape")
    shape: list[int]
    axes: list[str]


class PredictResponse(BaseModel):
    task: str
    prediction: Any
    probabilities: list[float] | None = None
    attention: Attention | None
    note: str | None = None
    model_ms: float = Field(description="time in the model, the wait for it excluded")


class Health(BaseModel):
    status: str = Field(description='"ok" when the model answered its self-test with finite numbers')
    task: str
    profile: str
    step: int
    n_params: int
    verified: bool = Field(description="the checkpoint's SHA-256 was recorded and matched at load")
    input: str = Field(description="what the request's input must be")
    example: dict
    problem: str | None = None


class Ready(BaseModel):
    ready: bool
    problem: str | None = None
