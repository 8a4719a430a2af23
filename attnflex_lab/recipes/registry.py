"""The recipe registry: what a recipe is, and the table of recipes by name.

Each recipe module registers itself here on import; ``recipes/__init__`` imports them all, so the
registry sits below every recipe and nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import nn
from torch.utils.data import Dataset

from ..training import TrainConfig


@dataclass
class RecipeRun:
    """Everything one training run needs, built by a recipe for one profile and seed."""

    model: nn.Module
    train_data: Dataset
    val_data: Dataset | None
    cfg: TrainConfig
    loss_fn: Callable                                  # (model, batch) -> loss | (loss, extras)
    eval_fn: Callable | None = None                    # (model, data) -> {metric: float}
    final_metrics: Callable[[nn.Module], dict] | None = None  # after training, e.g. on the test set
    callbacks: Sequence = ()                           # passed to fit
    extras: dict = field(default_factory=dict)         # for lessons: vocabularies, test data


@dataclass(frozen=True)
class Recipe:
    name: str                                          # the CLI's --task value
    summary: str                                       # one line for --help
    build: Callable[[str, int], RecipeRun]             # (profile, seed) -> RecipeRun


_REGISTRY: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    if recipe.name in _REGISTRY:
        raise ValueError(f"recipe {recipe.name!r} is registered twice")
    _REGISTRY[recipe.name] = recipe
    return recipe


def get(name: str) -> Recipe:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(names()) or "none"
        raise KeyError(f"no recipe {name!r}; known recipes: {known}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)
