"""``python -m attnflex_lab serve``: a trained checkpoint behind a small standard-library HTTP server.

    predictor.py   checkpoint -> recipe (matched by its weights) -> a model that answers requests
    metrics.py     request counts, errors and a latency histogram in the Prometheus text format
    app.py         the ThreadingHTTPServer with /predict, /health and /metrics
    cli.py         the command line
"""

from .app import make_server
from .metrics import Metrics
from .predictor import Predictor, ServeSetupError, load_predictor

__all__ = ["Metrics", "Predictor", "ServeSetupError", "load_predictor", "make_server"]
