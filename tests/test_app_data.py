"""Lesson 11's data: each loader gives the shapes, dtypes and split it promises, with no NaN, the
same every time, and nothing downloaded (a missing file or optional data set says so clearly)."""

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from attnflex_lab.tasks import errors, recsys, timeseries
from attnflex_lab.tasks.bundled import DATA_DIR_ENV, data_path

# sha256 of the bundled files (data/README.md gives the same; scripts/make_app_data.py remakes them)
CO2_SHA256 = "0faa4d2fe2959e99b1d194c820fbfeb90f7989d930131cdff7968c0fccd09fdd"
ERRORS_SHA256 = "e3e8871cbf8be81366df3e3281c879f266fc217159152d71dfa6d3b77a383c31"


@pytest.mark.parametrize(("name", "sha"), [("co2_monthly.csv", CO2_SHA256), ("python_errors.csv", ERRORS_SHA256)])
def test_bundled_files_are_the_ones_the_card_describes(name, sha):
    assert hashlib.sha256(data_path(name).read_bytes()).hexdigest() == sha


def test_a_missing_bundled_file_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"co2_monthly.csv.*Nothing is downloaded"):
        timeseries.load_series("co2")


# --- CO2 ------------------------------------------------------------------------------------------

def test_co2_series_shape_dtype_and_values():
    series = timeseries.load_series("co2")
    assert series.values.shape == (526,) and series.values.dtype == np.float64
    assert not np.isnan(series.values).any() and series.season == 12
    assert series.labels[0] == "1958-03" and series.labels[-1] == "2001-12"
    assert 310 < series.values.min() and series.values.max() < 380                 # ppm


def test_co2_windows_and_chronological_split():
    values = timeseries.load_series("co2").values
    x, target, index = timeseries.make_windows(values, 36)
    assert x.shape == (489, 36) and target.shape == (489,) and x.dtype == target.dtype == torch.float32
    assert not torch.isnan(x).any()
    # target i is the change into values[index[i]], and x[i, -1] is the change just before it
    np.testing.assert_allclose(target.double().numpy(), values[index] - values[index - 1], atol=1e-4)
    np.testing.assert_allclose(x[:, -1].double().numpy(), values[index - 1] - values[index - 2], atol=1e-4)
    train, val, test = timeseries.split_series(len(x))
    assert (train.stop, val.stop, test.stop) == (342, 391, 489) and train.start == 0 and val.start == 342
    assert timeseries.split_series(len(x)) == (train, val, test)                   # deterministic


def test_sunspots_falls_back_to_co2_with_a_message_when_statsmodels_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels.datasets", None)                # import fails
    with pytest.warns(UserWarning, match="statsmodels, which is not installed"):
        series = timeseries.load_series("sunspots")
    assert series.name == "co2"


def test_unknown_series_is_refused():
    with pytest.raises(ValueError, match="unknown series 'airline'"):
        timeseries.load_series("airline")


# --- Python error messages ------------------------------------------------------------------------

def test_error_messages_shape_labels_and_split():
    data = errors.load_errors()
    assert len(data) == 1262 and data.labels.shape == (1262,) and data.labels.dtype == torch.long
    assert set(data.labels.tolist()) == {0, 1} and all(t.strip() for t in data.texts)
    assert int((data.labels == errors.LABELS.index("TypeError")).sum()) == 428
    train, val, test = errors.split_messages(data, seed=0)
    assert (len(train), len(val), len(test)) == (821, 126, 315)
    assert not set(train.texts) & set(test.texts) and not set(val.texts) & set(test.texts)
    again = errors.split_messages(errors.load_errors(), seed=0)[2]
    assert again.texts == test.texts and torch.equal(again.labels, test.labels)  # deterministic
    assert errors.split_messages(data, seed=1)[2].texts != test.texts             # the seed matters


def test_tokenizer_and_vocabulary():
    words = ["expected", "str", "not", "{}", "got", "%s", "x", "2"]
    assert errors.tokenize("Expected str, not {} (got %s) x2") == words
    vocab = errors.Vocabulary(["bad value", "bad type", "bad"], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "bad"]
    ids = vocab.encode(["bad value here", "bad"], max_len=4)
    assert ids.dtype == torch.long and ids.tolist() == [[2, 1, 1, 0], [2, 0, 0, 0]]


def test_delete_tokens_closes_the_gaps_and_keeps_padding_at_the_end():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    drop = torch.tensor([[False, True, False, False], [True, False, False, False]])
    assert errors.delete_tokens(ids, drop).tolist() == [[5, 7, 0, 0], [9, 0, 0, 0]]
    weights = torch.tensor([[0.1, 0.7, 0.2, 0.0], [0.4, 0.6, 0.0, 0.0]])
    top = [[False, True, False, False], [False, True, False, False]]
    assert errors.top_k_positions(weights, ids, 1).tolist() == top
    rand = errors.random_positions(ids, 2, torch.Generator().manual_seed(0))
    assert rand.sum(1).tolist() == [2, 2] and not rand[ids == 0].any()           # never padding
    with pytest.raises(ValueError, match="shaped like ids"):
        errors.delete_tokens(ids, drop[:, :3])


# --- synthetic clicks -----------------------------------------------------------------------------

def test_clicks_shapes_truth_and_split():
    data = recsys.make_clicks(300, seed=3)
    assert data.history.shape == (300, 20) and data.history.dtype == torch.long
    assert data.label.dtype == torch.float32 and data.candidate.shape == (300,)
    partner = recsys.partners(100)
    for h, c, y, r in zip(data.history, data.candidate, data.label, data.relevant, strict=True):
        real = h[h > 0]
        assert 5 <= len(real) <= 20 and (h[len(real):] == 0).all()               # padding at the end
        assert len(set(real.tolist())) == len(real) and int(c) not in real.tolist()
        partners_seen = (real == partner[c]).nonzero().flatten().tolist()
        assert partners_seen == ([int(r)] if y == 1 else []) and (int(r) >= 0) == (y == 1)
    again = recsys.make_clicks(300, seed=3)
    assert torch.equal(again.history, data.history) and torch.equal(again.candidate, data.candidate)
    train, val, test = recsys.split_clicks(data)
    assert (len(train), len(val), len(test)) == (210, 30, 60)
    assert torch.equal(test.history, data.history[240:])


def test_partners_are_a_pairing():
    partner = recsys.partners(100)
    items = torch.arange(1, 101)
    assert torch.equal(partner[partner[items]], items) and (partner[items] != items).all()
    with pytest.raises(ValueError, match="even"):
        recsys.partners(7)


def test_sunspots_load_from_statsmodels_when_it_is_there():
    pytest.importorskip("statsmodels")
    series = timeseries.load_series("sunspots")
    assert series.name == "sunspots" and series.values.shape == (309,) and series.values.dtype == np.float64
    assert not np.isnan(series.values).any() and series.labels[0] == "1700"


@pytest.mark.parametrize(("values", "window", "message"), [
    (np.zeros((3, 4)), 2, "1-D without NaN"), (np.array([1.0, np.nan, 2.0, 3.0]), 1, "1-D without NaN"),
    (np.arange(10.0), 9, r"window must be in \[1, 8\]")])
def test_bad_series_or_window_is_refused(values, window, message):
    with pytest.raises(ValueError, match=message):
        timeseries.make_windows(values, window)


def test_bad_split_fractions_and_short_training_series_are_refused():
    with pytest.raises(ValueError, match="sum below 1"):
        timeseries.split_series(100, test_fraction=0.6, val_fraction=0.5)
    with pytest.raises(ValueError, match="more than season=12"):
        timeseries.mase([1.0], [1.0], np.arange(12.0), 12)


def test_a_plain_install_carries_the_data(tmp_path):
    """Colab installs the lab with pip from the repository (not editable): the wheel must hold the CSVs."""
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"                       # a copy, so the build leaves no build/ in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "attnflex_lab", src / "attnflex_lab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(src), "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=120)
    (wheel,) = (tmp_path / "dist").glob("attnflex_lab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"attnflex_lab/data/co2_monthly.csv", "attnflex_lab/data/python_errors.csv"} <= names, sorted(names)[:20]
