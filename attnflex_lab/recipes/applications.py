"""Lesson 11's three applications, each trained against its baselines, sized by the profile.

``run_forecast``, ``run_clicks`` and ``run_text`` train one seed and return what the lesson shows
and the learning tests check: the metrics, the trained models and the attention they produce.
Training goes through ``training.fit``; the baselines (seasonal-naive, linear AR, mean pooling,
bag-of-words logistic regression) are fitted on the same training split. Every run trains on the
CPU, in every profile: the models have a few thousand parameters, and a GPU would add only
transfers (and make the seeded results differ from the ones the lesson quotes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..models.din import ClickModel, DINConfig
from ..models.forecaster import AttentionForecaster, ForecasterConfig
from ..models.text_classifier import PooledTextClassifier, TextClassifierConfig
from ..profiles import by_profile
from ..tasks import errors, recsys, timeseries
from ..training import TrainConfig, fit


def _config(steps: int, batch_size: int, lr: float, seed: int, weight_decay: float = 0.0) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, weight_decay=weight_decay,
                       progress=False, device="cpu")


@dataclass
class ForecastRun:
    mase: dict[str, float]          # model name -> MASE on the held-out tail
    mae: dict[str, float]           # model name -> MAE (ppm)
    lag_weights: dict[str, np.ndarray] = field(repr=False)   # attention model -> (N_test, L), [:, k-1] = lag k
    models: dict = field(repr=False, default_factory=dict)
    test_x: torch.Tensor = field(repr=False, default=None)  # (N_test, L) normalised windows
    test_labels: list[str] = field(repr=False, default_factory=list)


def run_forecast(seed: int = 0, *, profile_name: str | None = None, window: int = 36) -> ForecastRun:
    """Seasonal-naive, linear AR and two attention forecasters (query from the window / one learned
    query) on the last 20% of monthly CO2, one step ahead."""
    series = timeseries.load_series("co2")
    x, target, index = timeseries.make_windows(series.values, window)          # (N, L), (N,), (N,)
    train, _, test = timeseries.split_series(len(x))
    mu, sd = target[train].mean(), target[train].std()
    xn, yn = (x - mu) / sd, (target - mu) / sd                                 # normalised differences
    history = series.values[:index[train][-1] + 1]                              # what MASE may scale by
    actual, last = series.values[index[test]], series.values[index[test] - 1]
    forecasts = {"seasonal naive": timeseries.seasonal_naive(series.values, index[test], series.season),
                 "linear AR": last + timeseries.predict_linear_ar(timeseries.fit_linear_ar(x[train], target[train]),
                                                                  x[test])}
    steps = by_profile(smoke=40, cpu=1000, gpu=1000, profile_name=profile_name)
    lag_weights, models = {}, {}
    for name, from_window in (("attention (query from window)", True), ("attention (one learned query)", False)):
        torch.manual_seed(seed)
        model = AttentionForecaster(ForecasterConfig(window=window, query_from_window=from_window))
        fit(model, TensorDataset(xn[train], yn[train]), None, _config(steps, 64, 3e-3, seed),
            loss_fn=lambda m, b: F.mse_loss(m(b[0])[0], b[1]))
        model.eval()
        with torch.no_grad():
            pred, alpha = model(xn[test])                                       # (N_test,), (N_test, L)
        forecasts[name] = last + (pred * sd + mu).double().numpy()
        lag_weights[name] = alpha.flip(1).numpy()                               # column k-1 = lag k
        models[name] = model
    return ForecastRun(
        mase={k: timeseries.mase(f, actual, history, series.season) for k, f in forecasts.items()},
        mae={k: timeseries.mae(f, actual) for k, f in forecasts.items()},
        lag_weights=lag_weights, models=models, test_x=xn[test],
        test_labels=[series.labels[i] for i in index[test]])


@dataclass
class ClickRun:
    auc: dict[str, float]           # pooling -> test AUC
    top1: dict[str, float]          # pooling -> how often the top weight is on the relevant item
    chance_top1: float              # the same for a uniformly random pick among the real items
    weights: dict[str, torch.Tensor] = field(repr=False)  # pooling -> (N_test, L)
    test: recsys.Clicks = field(repr=False, default=None)


def run_clicks(seed: int = 0, *, profile_name: str | None = None) -> ClickRun:
    """Target attention (DIN) vs mean pooling on the synthetic pairs task (data drawn from ``seed``)."""
    from sklearn.metrics import roc_auc_score

    n = by_profile(smoke=1500, cpu=8000, gpu=20000, profile_name=profile_name)
    steps = by_profile(smoke=60, cpu=1500, gpu=3000, profile_name=profile_name)
    train, _, test = recsys.split_clicks(recsys.make_clicks(n, seed=seed))
    auc, top1, weights = {}, {}, {}
    for pooling in ("target", "mean"):
        torch.manual_seed(seed)
        model = ClickModel(DINConfig(pooling=pooling))
        fit(model, TensorDataset(train.history, train.candidate, train.label), None, _config(steps, 128, 3e-3, seed),
            loss_fn=lambda m, b: F.binary_cross_entropy_with_logits(m(b[0], b[1])[0], b[2]))
        model.eval()
        with torch.no_grad():
            logit, alpha = model(test.history, test.candidate)                  # (N,), (N, L)
        auc[pooling] = float(roc_auc_score(test.label.numpy(), logit.numpy()))
        top1[pooling] = recsys.top1_hit_rate(alpha, test)
        weights[pooling] = alpha
    positive = test.relevant >= 0
    chance = float((1.0 / test.mask[positive].sum(1).float()).mean())
    return ClickRun(auc, top1, chance, weights, test)


@dataclass
class TextRun:
    accuracy: dict[str, float]      # model -> test accuracy
    majority: float                 # accuracy of always answering the larger class
    deletion_drop: dict[str, float]  # "top-k attended" / "random k" -> accuracy drop on the attention model
    k: int
    model: PooledTextClassifier = field(repr=False, default=None)
    vocab: errors.Vocabulary = field(repr=False, default=None)
    test: errors.Messages = field(repr=False, default=None)
    test_ids: torch.Tensor = field(repr=False, default=None)


def run_text(seed: int = 0, *, profile_name: str | None = None, k: int = 2, random_repeats: int = 5) -> TextRun:
    """Bag-of-words logistic regression, mean pooling and attention pooling on the error messages
    (split drawn from ``seed``), and the deletion check on the attention model."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train, _, test = errors.split_messages(errors.load_errors(), seed=seed)
    vectorizer = CountVectorizer(tokenizer=errors.tokenize, token_pattern=None, lowercase=False, binary=True)
    bow = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(train.texts), train.labels.numpy())
    accuracy = {"bag-of-words logistic regression":
                float((bow.predict(vectorizer.transform(test.texts)) == test.labels.numpy()).mean())}
    vocab = errors.Vocabulary(train.texts)
    x_train, x_test = vocab.encode(train.texts), vocab.encode(test.texts)       # (N, T) each
    steps = by_profile(smoke=40, cpu=600, gpu=600, profile_name=profile_name)
    models = {}
    for pooling in ("mean", "attention"):
        torch.manual_seed(seed)
        model = PooledTextClassifier(TextClassifierConfig(vocab_size=len(vocab), pooling=pooling))
        fit(model, TensorDataset(x_train, train.labels), None, _config(steps, 64, 1e-2, seed, weight_decay=0.01),
            loss_fn=lambda m, b: F.cross_entropy(m(b[0])[0], b[1]))
        model.eval()
        with torch.no_grad():
            accuracy[f"{pooling} pooling"] = float((model(x_test)[0].argmax(1) == test.labels).float().mean())
        models[pooling] = model
    share = float(test.labels.float().mean())
    drop = deletion_drops(models["attention"], x_test, test.labels, k, seed, random_repeats)
    return TextRun(accuracy, max(share, 1 - share), drop, k, models["attention"], vocab, test, x_test)


@torch.no_grad()
def deletion_drops(model, ids: torch.Tensor, labels: torch.Tensor, k: int, seed: int, repeats: int = 5
                   ) -> dict[str, float]:
    """Accuracy lost when each text (with more than k real tokens) loses its k most attended
    tokens, and when it loses k random tokens (averaged over ``repeats`` draws)."""
    longer = (ids > 0).sum(1) > k
    ids, labels = ids[longer], labels[longer]                                   # (M, T), (M,)

    def accuracy(x):
        return float((model(x)[0].argmax(1) == labels).float().mean())

    base, (_, alpha) = accuracy(ids), model(ids)
    top = accuracy(errors.delete_tokens(ids, errors.top_k_positions(alpha, ids, k)))
    gen = torch.Generator().manual_seed(seed)
    rand = np.mean([accuracy(errors.delete_tokens(ids, errors.random_positions(ids, k, gen)))
                    for _ in range(repeats)])
    return {"top-k attended": base - top, "random k": float(base - rand)}
