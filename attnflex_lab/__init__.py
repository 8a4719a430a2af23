"""attnflex-lab: a teaching lab on attention, its gradients, GPU training and attention elasticity.

Dimension legend used everywhere: B batch, H heads, T queries, S keys, D query/key width, Dv value width.
"""

from . import functional, gradcheck, metrics, modules, ops
from ._meta import COLAB_URL, REPO_URL
from ._moved import install as _install_moved_names
from .device import environment_report, in_colab, pick_device, seed_everything
from .exercises import hint, progress
from .profiles import PROFILES, by_profile, profile
from .training import History, TrainConfig, evaluate, fit

__version__ = "0.1.0"

# the old flat names (attnflex_lab.flash, attnflex_lab.explain, ...) still import: see _moved.py
_install_moved_names(__name__)

__all__ = [
    "COLAB_URL",
    "PROFILES",
    "REPO_URL",
    "History",
    "TrainConfig",
    "__version__",
    "by_profile",
    "environment_report",
    "evaluate",
    "fit",
    "functional",
    "gradcheck",
    "hint",
    "in_colab",
    "metrics",
    "modules",
    "ops",
    "pick_device",
    "profile",
    "progress",
    "seed_everything",
]
