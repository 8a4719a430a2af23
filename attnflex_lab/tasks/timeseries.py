"""Monthly Mauna Loa CO2 as a one-step-ahead forecasting task, with the baselines to beat.

The series has a trend (about +1.3 ppm a year) and a 12-month season (about ±3 ppm). Models see
the last ``window`` month-to-month *differences* (the trend becomes a near-constant offset, and the
season stays: the difference 12 months back is the best single guess for the next one) and predict
the next difference; the forecast is the last value plus that difference.

- ``load_series("co2")`` reads the bundled ``attnflex_lab/data/co2_monthly.csv`` (card in data/README.md).
  ``load_series("sunspots")`` is optional: statsmodels carries it; without statsmodels the loader
  says so and falls back to the bundled CO2 series.
- ``make_windows`` builds (inputs, target) pairs; ``split_series`` keeps the last ``test_fraction``
  of the targets as a held-out tail (never shuffled: the future is not in training).
- ``seasonal_naive`` (ŷ_t = y_{t−m}), ``fit_linear_ar`` (least squares on the same window) and
  ``mase`` (MAE over the in-sample seasonal-naive MAE, Hyndman & Koehler 2006).
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .bundled import data_path

SEASON = 12  # months


@dataclass
class Series:
    name: str
    values: np.ndarray      # (N,) float64, no NaN
    labels: list[str]       # (N,) "YYYY-MM"
    season: int             # period in steps


def load_series(name: str = "co2") -> Series:
    """A monthly series by name: "co2" (bundled) or "sunspots" (optional, from statsmodels)."""
    if name == "co2":
        with data_path("co2_monthly.csv").open() as f:
            rows = list(csv.DictReader(f))
        values = np.array([float(r["co2_ppm"]) for r in rows], dtype=np.float64)
        return Series("co2", values, [r["month"] for r in rows], SEASON)
    if name == "sunspots":
        try:
            from statsmodels.datasets import sunspots
        except ImportError:
            warnings.warn("the sunspots series comes from statsmodels, which is not installed; "
                          "falling back to the bundled monthly CO2 series", stacklevel=2)
            return load_series("co2")
        data = sunspots.load_pandas().data                       # yearly, 1700-2008
        return Series("sunspots", data["SUNACTIVITY"].to_numpy(np.float64),
                      [str(int(y)) for y in data["YEAR"]], 11)
    raise ValueError(f"unknown series {name!r}; choose 'co2' (bundled) or 'sunspots' (statsmodels)")


def make_windows(values: np.ndarray, window: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Differences d_t = y_t − y_{t−1}; inputs are the last ``window`` of them, the target the next.

    Returns ``(x (N, window) float32, target (N,) float32, index (N,))`` where ``index[i]`` is the
    position in ``values`` of the value being forecast. x[:, -1] is the most recent difference.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or np.isnan(values).any():
        raise ValueError(f"values must be 1-D without NaN, got shape {values.shape}")
    if not 1 <= window < len(values) - 1:
        raise ValueError(f"window must be in [1, {len(values) - 2}] for {len(values)} values, got {window}")
    diffs = np.diff(values)                                       # (N-1,), diffs[j] = y[j+1] - y[j]
    n = len(diffs) - window
    x = np.stack([diffs[i:i + window] for i in range(n)])        # (n, window)
    target = diffs[window:]                                       # (n,)
    index = np.arange(window + 1, len(values))                    # target i forecasts values[index[i]]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(target, dtype=torch.float32), index


def split_series(n: int, test_fraction: float = 0.2, val_fraction: float = 0.1) -> tuple[slice, slice, slice]:
    """Chronological train / val / test slices of n windows: the test set is the last tail."""
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise ValueError(f"fractions must be in (0, 1) and sum below 1, got {test_fraction}, {val_fraction}")
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    return slice(0, n - n_test - n_val), slice(n - n_test - n_val, n - n_test), slice(n - n_test, n)


def seasonal_naive(values: np.ndarray, index: np.ndarray, season: int) -> np.ndarray:
    """ŷ_t = y_{t−m}: this month last year."""
    return np.asarray(values)[np.asarray(index) - season]


def fit_linear_ar(x: torch.Tensor, target: torch.Tensor, ridge: float = 0.0) -> np.ndarray:
    """Weights (window + 1,) of d̂ = w · x + b on the training windows: least squares, plus
    ``ridge`` · ‖w‖² when ``ridge`` > 0 (the intercept is not penalised)."""
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    design = np.concatenate([x.double().numpy(), np.ones((len(x), 1))], axis=1)   # (N, window+1)
    y = target.double().numpy()
    if ridge == 0:
        weights, *_ = np.linalg.lstsq(design, y, rcond=None)
        return weights
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0                                           # the intercept goes free
    return np.linalg.solve(design.T @ design + penalty, design.T @ y)   # (window+1, window+1) @ w = Xᵀy


def predict_linear_ar(weights: np.ndarray, x: torch.Tensor) -> np.ndarray:
    return x.double().numpy() @ weights[:-1] + weights[-1]       # (N, window) @ (window,) -> (N,)


def mae(forecast, actual) -> float:
    forecast, actual = np.asarray(forecast, np.float64), np.asarray(actual, np.float64)
    if forecast.shape != actual.shape:
        raise ValueError(f"forecast {forecast.shape} and actual {actual.shape} differ in shape")
    return float(np.abs(forecast - actual).mean())


def mase(forecast, actual, train_values, season: int) -> float:
    """MAE of the forecast over the in-sample MAE of the seasonal-naive forecast on ``train_values``.

    Below 1: better than last year's value, on average, by that factor (Hyndman & Koehler 2006).
    """
    train_values = np.asarray(train_values, np.float64)
    if len(train_values) <= season:
        raise ValueError(f"need more than season={season} training values, got {len(train_values)}")
    scale = np.abs(train_values[season:] - train_values[:-season]).mean()
    return mae(forecast, actual) / scale
