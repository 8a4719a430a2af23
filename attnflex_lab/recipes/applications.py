"""Lesson 11's three applications, each trained against its baselines, sized by the profile.

``run_forecast``, ``run_clicks`` and ``run_text`` train one seed and return what the lesson shows
and the learning tests check: the metrics, the trained models and the attention they produce.
Training goes through ``training.fit``; the baselines (seasonal-naive, linear AR, mean and sum
pooling, bag-of-words logistic regression) are fitted on the same training split.

The validation split chooses each setting, the test split is read once: every trained model keeps
the weights of its lowest validation loss (evaluated ten times per run, ``KeepBest``), the linear AR
its ridge penalty and the logistic regression its inverse penalty C, from a small grid each. Claims
that two models are on par come with a bootstrap interval over the test items
(``bootstrap_mean_interval``; months in blocks of a year, since a series' errors are correlated).
Every run trains on the
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

AR_RIDGES = (0.0, 0.1, 1.0, 10.0)           # the linear AR's penalties; the validation months choose
LOGISTIC_CS = (0.1, 0.3, 1.0, 3.0, 10.0)    # bag-of-words inverse penalties; the validation texts choose


def _config(steps: int, batch_size: int, lr: float, seed: int, weight_decay: float = 0.0) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, weight_decay=weight_decay,
                       eval_every=max(1, steps // 10), progress=False, device="cpu")


class KeepBest:
    """``fit`` callback: keeps the weights at the lowest validation loss; ``restore`` loads them."""

    def __init__(self):
        self.loss, self.step, self.weights = float("inf"), 0, None

    def on_eval(self, state, metrics: dict) -> None:
        if metrics["val_loss"] < self.loss:
            self.loss, self.step = metrics["val_loss"], state.step
            self.weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}

    def restore(self, model: torch.nn.Module) -> int:
        """Load the best weights into ``model`` (eval mode); return the step they come from."""
        if self.weights is None:
            raise RuntimeError("KeepBest saw no evaluation: give fit a validation set and eval_every")
        model.load_state_dict(self.weights)
        model.eval()
        return self.step


def _fit_best(model, train: TensorDataset, val: TensorDataset, cfg: TrainConfig, loss_fn) -> int:
    """Train, then keep the weights the validation split prefers; the step they come from."""
    keep = KeepBest()
    fit(model, train, val, cfg, loss_fn=loss_fn, callbacks=[keep])
    return keep.restore(model)


def bootstrap_mean_interval(values, *, block: int = 1, resamples: int = 2000, level: float = 0.9,
                            seed: int = 0) -> tuple[float, float]:
    """The central ``level`` interval of the mean of ``values`` (N,) under a moving-block bootstrap:
    each resample glues random runs of ``block`` consecutive items (block=1: the ordinary bootstrap)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or not 1 <= block <= len(v):
        raise ValueError(f"values must be 1-D with at least block={block} items, got shape {v.shape}")
    rng = np.random.default_rng(seed)
    n_blocks = -(-len(v) // block)
    starts = rng.integers(0, len(v) - block + 1, size=(resamples, n_blocks))        # (R, n_blocks)
    idx = (starts[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :len(v)]  # (R, N)
    low, high = np.quantile(v[idx].mean(1), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


@dataclass
class ForecastRun:
    mase: dict[str, float]          # model name -> MASE on the held-out tail
    mae: dict[str, float]           # model name -> MAE (ppm)
    lag_weights: dict[str, np.ndarray] = field(repr=False)   # attention model -> (N_test, L), [:, k-1] = lag k
    models: dict = field(repr=False, default_factory=dict)
    test_x: torch.Tensor = field(repr=False, default=None)  # (N_test, L) normalised windows
    test_labels: list[str] = field(repr=False, default_factory=list)
    abs_errors: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # name -> (N_test,) ppm
    scale: float = 1.0              # MASE's denominator: in-sample seasonal-naive MAE (ppm)
    chosen: dict = field(default_factory=dict)  # what validation chose: AR ridge, best step per model

    def mase_difference(self, a: str, b: str, level: float = 0.9) -> tuple[float, float, float]:
        """MASE(a) − MASE(b) over the test months and its block-bootstrap interval (blocks of a year)."""
        diff = (self.abs_errors[a] - self.abs_errors[b]) / self.scale                 # (N_test,)
        return (float(diff.mean()), *bootstrap_mean_interval(diff, block=12, level=level))


def run_forecast(seed: int = 0, *, profile_name: str | None = None, window: int = 36) -> ForecastRun:
    """Seasonal-naive, linear AR and two attention forecasters (query from the window / one learned
    query) on the last 20% of monthly CO2, one step ahead."""
    series = timeseries.load_series("co2")
    x, target, index = timeseries.make_windows(series.values, window)          # (N, L), (N,), (N,)
    train, val, test = timeseries.split_series(len(x))
    mu, sd = target[train].mean(), target[train].std()
    xn, yn = (x - mu) / sd, (target - mu) / sd                                 # normalised differences
    history = series.values[:index[train][-1] + 1]                              # what MASE may scale by
    actual, last = series.values[index[test]], series.values[index[test] - 1]
    ridge = min(AR_RIDGES, key=lambda r: timeseries.mae(timeseries.predict_linear_ar(
        timeseries.fit_linear_ar(x[train], target[train], r), x[val]), target[val]))  # chosen on validation
    ar = timeseries.fit_linear_ar(x[train], target[train], ridge)
    forecasts = {"seasonal naive": timeseries.seasonal_naive(series.values, index[test], series.season),
                 "linear AR": last + timeseries.predict_linear_ar(ar, x[test])}
    steps = by_profile(smoke=40, cpu=1000, gpu=1000, profile_name=profile_name)
    lag_weights, models, chosen = {}, {}, {"AR ridge": ridge}
    for name, from_window in (("attention (query from window)", True), ("attention (one learned query)", False)):
        torch.manual_seed(seed)
        model = AttentionForecaster(ForecasterConfig(window=window, query_from_window=from_window))
        chosen[f"{name}: best step"] = _fit_best(
            model, TensorDataset(xn[train], yn[train]), TensorDataset(xn[val], yn[val]),
            _config(steps, 64, 3e-3, seed), loss_fn=lambda m, b: F.mse_loss(m(b[0])[0], b[1]))
        with torch.no_grad():
            pred, alpha = model(xn[test])                                       # (N_test,), (N_test, L)
        forecasts[name] = last + (pred * sd + mu).double().numpy()
        lag_weights[name] = alpha.flip(1).numpy()                               # column k-1 = lag k
        models[name] = model
    return ForecastRun(
        mase={k: timeseries.mase(f, actual, history, series.season) for k, f in forecasts.items()},
        mae={k: timeseries.mae(f, actual) for k, f in forecasts.items()},
        lag_weights=lag_weights, models=models, test_x=xn[test],
        test_labels=[series.labels[i] for i in index[test]],
        abs_errors={k: np.abs(np.asarray(f, np.float64) - actual) for k, f in forecasts.items()},
        scale=timeseries.mae(history[series.season:], history[:-series.season]), chosen=chosen)


@dataclass
class ClickRun:
    auc: dict[str, float]           # pooling -> test AUC
    top1: dict[str, float]          # pooling -> how often the top weight is on the relevant item
    chance_top1: float              # the same for a uniformly random pick among the real items
    weights: dict[str, torch.Tensor] = field(repr=False)  # pooling -> (N_test, L)
    test: recsys.Clicks = field(repr=False, default=None)


def run_clicks(seed: int = 0, *, profile_name: str | None = None,
               poolings: tuple[str, ...] = ("target", "mean", "sum")) -> ClickRun:
    """Target attention (DIN) vs mean pooling and sum pooling (α_j = 1: no weights at all, the control
    that removes only the candidate-dependent weighting) on the synthetic pairs task (data drawn
    from ``seed``)."""
    from sklearn.metrics import roc_auc_score

    n = by_profile(smoke=1500, cpu=8000, gpu=20000, profile_name=profile_name)
    steps = by_profile(smoke=60, cpu=1500, gpu=3000, profile_name=profile_name)
    train, val, test = recsys.split_clicks(recsys.make_clicks(n, seed=seed))
    auc, top1, weights = {}, {}, {}
    for pooling in poolings:
        torch.manual_seed(seed)
        model = ClickModel(DINConfig(pooling=pooling))
        _fit_best(model, TensorDataset(train.history, train.candidate, train.label),
                  TensorDataset(val.history, val.candidate, val.label), _config(steps, 128, 3e-3, seed),
                  loss_fn=lambda m, b: F.binary_cross_entropy_with_logits(m(b[0], b[1])[0], b[2]))
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
    correct: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # model -> (N_test,) bool
    chosen: dict = field(default_factory=dict)  # what validation chose: C, best step per model

    def accuracy_difference(self, a: str, b: str, level: float = 0.9) -> tuple[float, float, float]:
        """accuracy(a) − accuracy(b) on the same test messages, and its paired bootstrap interval."""
        diff = self.correct[a].astype(np.float64) - self.correct[b]                     # (N_test,)
        return (float(diff.mean()), *bootstrap_mean_interval(diff, level=level))


def run_text(seed: int = 0, *, profile_name: str | None = None, k: int = 2, random_repeats: int = 5) -> TextRun:
    """Bag-of-words logistic regression, mean pooling and attention pooling on the error messages
    (split drawn from ``seed``), and the deletion check on the attention model."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train, val, test = errors.split_messages(errors.load_errors(), seed=seed)
    vectorizer = CountVectorizer(tokenizer=errors.tokenize, token_pattern=None, lowercase=False, binary=True)
    bags = {name: (vectorizer.fit_transform(train.texts) if name == "train" else vectorizer.transform(part.texts))
            for name, part in (("train", train), ("val", val), ("test", test))}
    fitted = {c: LogisticRegression(C=c, max_iter=2000).fit(bags["train"], train.labels.numpy()) for c in LOGISTIC_CS}
    best_c = max(LOGISTIC_CS, key=lambda c: (fitted[c].predict(bags["val"]) == val.labels.numpy()).mean())
    correct = {"bag-of-words logistic regression": fitted[best_c].predict(bags["test"]) == test.labels.numpy()}
    vocab = errors.Vocabulary(train.texts)
    x_train, x_val, x_test = vocab.encode(train.texts), vocab.encode(val.texts), vocab.encode(test.texts)  # (N, T)
    steps = by_profile(smoke=40, cpu=600, gpu=600, profile_name=profile_name)
    models, chosen = {}, {"logistic C": best_c}
    for pooling in ("mean", "attention"):
        torch.manual_seed(seed)
        model = PooledTextClassifier(TextClassifierConfig(vocab_size=len(vocab), pooling=pooling))
        chosen[f"{pooling} pooling: best step"] = _fit_best(
            model, TensorDataset(x_train, train.labels), TensorDataset(x_val, val.labels),
            _config(steps, 64, 1e-2, seed, weight_decay=0.01), loss_fn=lambda m, b: F.cross_entropy(m(b[0])[0], b[1]))
        with torch.no_grad():
            correct[f"{pooling} pooling"] = (model(x_test)[0].argmax(1) == test.labels).numpy()
        models[pooling] = model
    share = float(test.labels.float().mean())
    drop = deletion_drops(models["attention"], x_test, test.labels, k, seed, random_repeats)
    accuracy = {name: float(c.mean()) for name, c in correct.items()}
    return TextRun(accuracy, max(share, 1 - share), drop, k, models["attention"], vocab, test, x_test,
                   correct=correct, chosen=chosen)


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
