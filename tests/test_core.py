"""The package core: profiles, devices, seeding, the environment report."""

import random

import numpy as np
import pytest
import torch

import attnflex_lab as afl
from attnflex_lab.profiles import PROFILE_ENV


@pytest.mark.parametrize("raw, expected", [("smoke", "smoke"), ("cpu", "cpu"), ("gpu", "gpu"),
                                           (" GPU ", "gpu"), ("Cpu", "cpu")])
def test_profile_reads_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv(PROFILE_ENV, raw)
    assert afl.profile() == expected


@pytest.mark.parametrize("unset", [True, False])
def test_profile_defaults_by_device(monkeypatch, unset):
    if unset:
        monkeypatch.delenv(PROFILE_ENV, raising=False)
    else:
        monkeypatch.setenv(PROFILE_ENV, "")
    assert afl.profile() == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr("attnflex_lab.profiles._cuda_available", lambda: True)
    assert afl.profile() == "gpu"
    monkeypatch.setattr("attnflex_lab.profiles._cuda_available", lambda: False)
    assert afl.profile() == "cpu"


@pytest.mark.parametrize("bad", ["fast", "smoke-test", "GPU1", "0"])
def test_profile_rejects_unknown_values_clearly(monkeypatch, bad):
    monkeypatch.setenv(PROFILE_ENV, bad)
    with pytest.raises(ValueError) as err:
        afl.profile()
    message = str(err.value)
    assert repr(bad) in message and "smoke, cpu, gpu" in message


def test_by_profile_picks_the_current_or_given_profile(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "smoke")
    assert afl.by_profile(smoke=1, cpu=2, gpu=3) == 1
    assert afl.by_profile(smoke=1, cpu=2, gpu=3, profile_name="gpu") == 3
    with pytest.raises(ValueError, match="'tiny' is not a profile"):
        afl.by_profile(smoke=1, cpu=2, gpu=3, profile_name="tiny")
    with pytest.raises(TypeError):
        afl.by_profile(smoke=1, cpu=2)  # every profile must be sized


def _draw():
    return random.random(), np.random.rand(), torch.rand(3), torch.randn(2, 2)  # noqa: NPY002


def test_seed_everything_repeats_every_generator():
    afl.seed_everything(123)
    first = _draw()
    afl.seed_everything(123)
    second = _draw()
    afl.seed_everything(124)
    other = _draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    assert not torch.equal(first[2], other[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        afl.seed_everything(bad)


def test_pick_device():
    assert afl.pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert afl.pick_device().type == "cuda"
    else:
        assert afl.pick_device().type in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            afl.pick_device("cuda")


def test_in_colab(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert afl.in_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    assert afl.in_colab() is True


def test_environment_report_has_what_a_learner_needs(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "smoke")
    report = afl.environment_report()
    for key in ("python", "torch", "cuda available", "mps available", "device", "ipywidgets",
                "jupyterlab", "plotly", "profile"):
        assert key in report, key
    assert report["torch"] == torch.__version__
    assert report["profile"] == "smoke"
    text, html = str(report), report._repr_html_()
    assert "torch" in text and torch.__version__ in text
    assert html.startswith("<table>") and "<th style='text-align:left'>profile</th>" in html


def test_environment_report_survives_a_bad_profile(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "bogus")
    assert afl.environment_report()["profile"].startswith("invalid:")
