"""``python -m attnflex_lab serve``: a trained checkpoint behind FastAPI, served by uvicorn.

    predictor.py   checkpoint -> recipe (matched by its weights) -> a model that answers requests
    codecs.py      per recipe: JSON input -> tensors, outputs -> JSON with attention weights
    schemas.py     the pydantic request and response models (a bad field is a 422 naming it)
    limits.py      body size, JSON depth, long numbers and a deadline, checked before parsing
    metrics.py     prometheus_client counters and latency histograms in the app's own registry
    app.py         the FastAPI app: /predict, /health, /ready, /metrics, /docs
    cli.py         the command line (uvicorn, backlog, graceful shutdown on SIGTERM)
"""

from .app import create_app
from .codecs import InputError
from .limits import Limits
from .metrics import Metrics
from .predictor import Predictor, ServeSetupError, load_predictor

__all__ = ["InputError", "Limits", "Metrics", "Predictor", "ServeSetupError", "create_app",
           "load_predictor"]
