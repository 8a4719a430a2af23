"""Recipes: a task, its model, its loss and its profile-sized TrainConfig, for the CLI and lessons.

A recipe is a name plus ``build(profile, seed) -> RecipeRun``. ``train_recipe`` builds one, trains
it with ``fit`` and returns its final metrics; ``python -m attnflex_lab train --task NAME`` and the
learning tests call exactly that, so the command line, the tests and the lessons train alike.

    register(Recipe("digits", "attention classifier on 8x8 digits", build_digits))
    get("digits"), names()
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

from torch import nn

from ..profiles import PROFILES, profile
from ..training import History, TrainConfig, fit
from ..training.checkpoint import weights_sha256
from . import dates, dates_transformer, digits, lm, sequence, vit  # noqa: F401  (each registers its recipe on import)
from .registry import Recipe, RecipeRun, get, names, register


def build(name: str, *, profile_name: str | None = None, seed: int = 0, **overrides) -> RecipeRun:
    """The recipe's RecipeRun for a profile (default: the current one) and seed.

    ``overrides`` replace TrainConfig fields (``steps=...``, ``checkpoint_dir=...``); the run's
    ``cfg.seed`` is always ``seed``.
    """
    name_of_profile = profile() if profile_name is None else profile_name
    if name_of_profile not in PROFILES:
        raise ValueError(f"profile {name_of_profile!r} is not one of {', '.join(PROFILES)}")
    bad = [k for k in overrides if k not in {f.name for f in dataclasses.fields(TrainConfig)}]
    if bad:  # before building: a typo should not cost a data set and a model first
        raise TypeError(f"unknown TrainConfig fields {bad}")
    run = get(name).build(name_of_profile, seed)
    run.cfg = dataclasses.replace(run.cfg, seed=seed, recipe=f"{name}/{name_of_profile}", **overrides)
    return run


def train_recipe(name: str, *, profile_name: str | None = None, seed: int = 0,
                 resume: str | os.PathLike | None = None, overwrite: bool = False,
                 callbacks: Sequence = (), prepare_model: Callable[[nn.Module], object] | None = None,
                 **overrides) -> tuple[dict, RecipeRun, History]:
    """Build, train and score a recipe. Returns ``(metrics, run, history)``.

    ``resume`` and ``overwrite`` go to ``fit`` (go on from a checkpoint; clear the checkpoint folder).
    ``callbacks`` go to ``fit`` after the recipe's own (e.g. the CLI's ``--log-dir`` loggers).
    ``prepare_model(model)`` runs on the built model before training, in place (lesson 10: load
    trained weights, add LoRA).
    ``metrics`` holds the recipe's final metrics plus ``final_loss``, ``steps``, ``seconds`` and
    ``weights_sha256`` (equal hashes mean equal final weights, e.g. after a resume).
    """
    run = build(name, profile_name=profile_name, seed=seed, **overrides)
    if prepare_model is not None:
        prepare_model(run.model)
    history = fit(run.model, run.train_data, run.val_data, run.cfg, loss_fn=run.loss_fn,
                  eval_fn=run.eval_fn, callbacks=[*run.callbacks, *callbacks], resume=resume, overwrite=overwrite)
    metrics = dict(run.final_metrics(run.model)) if run.final_metrics else dict(history.last_eval)
    metrics.pop("step", None)
    metrics["final_loss"] = history.final_loss
    metrics["steps"] = history.steps[-1]["step"] if history.steps else 0
    metrics["seconds"] = round(history.seconds, 3)
    metrics["weights_sha256"] = weights_sha256(run.model)
    return metrics, run, history


__all__ = ["Recipe", "RecipeRun", "build", "get", "names", "register", "train_recipe"]
