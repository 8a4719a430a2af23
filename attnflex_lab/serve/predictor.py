"""A checkpoint the train CLI wrote, rebuilt as a model that answers one request at a time.

A checkpoint written through ``recipes.build`` (the train CLI, ``train_recipe``) names its recipe
and profile in its TrainConfig (``recipe="reverse/cpu"``); ``--task``/``--profile`` override it.
Older checkpoints, and ``fit`` runs outside the recipes, hold only weights, so the recipe is found
from them: every (recipe, profile) whose freshly built network has exactly the same parameter names
and shapes is a candidate (built without its data; large ones on the "meta" device, which allocates
nothing). One candidate recipe is served; several (sort and reverse share a network) ask for ``--task``.
Either way the weights must fit the network exactly (a checkpoint with LoRA or adapter weights does
not: merge them into the base model first).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..profiles import PROFILES
from ..training.checkpoint import HASH_KEY, load_checkpoint
from .codecs import CODECS, Codec, InputError, codec_for


class ServeSetupError(ValueError):
    """A checkpoint that cannot be served as asked; the message says what to pass instead."""


def _shapes(state: dict) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in state.items()}


def _fresh_state(codec: Codec) -> dict:
    """The state_dict of the codec's network, freshly built (its values do not matter, only shapes).

    gpu-profile networks (85M parameters for the lm) are built on the "meta" device, which
    allocates nothing; the small ones on the CPU, where building takes milliseconds, because the
    first meta initialisation in a process costs seconds (torch imports its reference ops)."""
    if codec.profile == "gpu":
        with torch.device("meta"):
            return codec.new_model().state_dict()
    return codec.new_model().state_dict()


def matching_codecs(state: dict, seed: int = 0, *, tasks=None, profiles=PROFILES) -> list[Codec]:
    """Codecs of every (recipe, profile) whose network has exactly the weights' names and shapes."""
    wanted = _shapes(state)
    found = []
    for recipe in tasks or sorted(CODECS):
        for profile_name in profiles:
            codec = codec_for(recipe, profile_name, seed)
            if _shapes(_fresh_state(codec)) == wanted:
                found.append(codec)
    return found


def _pick(codecs: list[Codec], path, task, profile_name) -> Codec:
    asked = ", ".join(f"{k}={v}" for k, v in (("task", task), ("profile", profile_name)) if v)
    if not codecs:
        raise ServeSetupError(f"the weights in {str(path)!r} fit no servable recipe"
                              + (f" with {asked}" if asked else "")
                              + f" (servable: {', '.join(sorted(CODECS))})")
    recipes = sorted({c.recipe for c in codecs})
    if len(recipes) > 1:
        raise ServeSetupError(f"the weights in {str(path)!r} fit the recipes {recipes} alike; pass "
                              f"--task with the one it was trained as")
    # One recipe under several profiles means the profile does not change its network; the codec's
    # other sizes then come from the network too, so the first (smallest) profile is as good as any.
    return codecs[0]


@dataclass
class ModelInfo:
    task: str
    profile: str
    step: int
    path: str
    n_params: int
    verified: bool = False      # the checkpoint carried a SHA-256 of its tensors, and it matched


class Predictor:
    """A served model: ``predict(request_dict) -> response_dict``, one request at a time.

    The lock makes requests take turns: attention is read through forward hooks registered on the
    shared model for the call, which two threads at once would mix up (and these small models do
    not gain from running in parallel on a CPU)."""

    def __init__(self, model: nn.Module, codec: Codec, info: ModelInfo):
        self.model, self.codec, self.info = model.eval(), codec, info
        self._lock = threading.Lock()

    def predict(self, request) -> dict:
        if not isinstance(request, dict):
            raise InputError(f"the request body must be a JSON object like {{\"input\": ...}}, got "
                             f"{type(request).__name__}")
        if "input" not in request:
            raise InputError(f"the request needs an \"input\" field: {self.codec.input_doc}")
        options = self.codec.options(request)
        unknown = sorted(set(request) - {"input", *options})
        if unknown:
            raise InputError(f"unknown request fields {unknown}; expected \"input\""
                             + "".join(f", \"{k}\"" for k in options), field=unknown[0])
        inputs = self.codec.encode(request["input"])
        with self._lock, torch.inference_mode():
            start = time.perf_counter()                     # the model's time, not the wait for it
            result = self.codec.predict(self.model, inputs, **options)
            seconds = time.perf_counter() - start
        return {"task": self.info.task, **result, "model_ms": round(1e3 * seconds, 3)}

    def self_test(self) -> str | None:
        """Answer the codec's example; None if the answer is finite JSON, else what went wrong.

        A model whose weights load but give NaN would make every request a 500 while a bare
        liveness check said ok: /health and /ready report this instead."""
        try:
            answer = self.predict({"input": self.codec.example()})
            json.dumps(answer, allow_nan=False)
        except ValueError as err:
            return f"the model's answer to its example is not finite JSON ({err})"
        except Exception as err:  # a model that cannot answer at all
            return f"the model failed on its example: {type(err).__name__}: {err}"
        return None


def load_predictor(path: str | os.PathLike, *, task: str | None = None,
                   profile_name: str | None = None) -> Predictor:
    """A Predictor for a checkpoint file (or the newest ``step_*.pt`` in a directory)."""
    if task is not None and task not in CODECS:
        raise ServeSetupError(f"--task {task!r} is not servable; servable: {', '.join(sorted(CODECS))}")
    if profile_name is not None and profile_name not in PROFILES:
        raise ServeSetupError(f"--profile {profile_name!r} is not one of {', '.join(PROFILES)}")
    ckpt = load_checkpoint(path, map_location="cpu")
    seed = int(ckpt.get("config", {}).get("seed", 0))          # the lm's vocabulary depends on it
    recorded = str(ckpt.get("config", {}).get("recipe") or "")   # "name/profile", from recipes.build
    if "/" in recorded:
        recorded_task, recorded_profile = recorded.split("/", 1)
        if recorded_task in CODECS and recorded_profile in PROFILES:
            task = task or recorded_task
            profile_name = profile_name or recorded_profile
    codecs = matching_codecs(ckpt["model"], seed, tasks=[task] if task else None,
                             profiles=[profile_name] if profile_name else PROFILES)
    codec = _pick(codecs, path, task, profile_name)
    model = codec.new_model()
    model.load_state_dict(ckpt["model"])                       # strict: names and shapes matched above
    info = ModelInfo(task=codec.recipe, profile=codec.profile, step=int(ckpt["step"]), path=str(path),
                     n_params=sum(p.numel() for p in model.parameters()),
                     verified=HASH_KEY in ckpt)
    return Predictor(model, codec, info)
