"""Lesson 11's models, baselines, metrics, figures and the example picker (no training here)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attnflex_lab.models.din import ClickModel, DINConfig  # noqa: E402
from attnflex_lab.models.forecaster import AttentionForecaster, ForecasterConfig  # noqa: E402
from attnflex_lab.models.text_classifier import PooledTextClassifier, TextClassifierConfig  # noqa: E402
from attnflex_lab.tasks import recsys, timeseries  # noqa: E402
from attnflex_lab.viz.applications import (  # noqa: E402
    example_picker,
    plot_history_attention,
    plot_lag_attention,
    plot_word_attention,
)
from tests.widgets import find_widget  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- models ---------------------------------------------------------------------------------------

def test_forecaster_shapes_and_a_fixed_profile_with_one_learned_query():
    torch.manual_seed(0)
    x = torch.randn(5, 12)
    pred, alpha = AttentionForecaster(ForecasterConfig(window=12))(x)
    assert pred.shape == (5,) and alpha.shape == (5, 12)
    assert torch.allclose(alpha.sum(1), torch.ones(5)) and not torch.allclose(alpha[0], alpha[1])
    fixed = AttentionForecaster(ForecasterConfig(window=12, query_from_window=False))
    q = fixed.query(x)
    assert torch.allclose(q, q[:1].expand(5, -1)) and not fixed.query.weight.requires_grad  # one query
    _, alpha = fixed(torch.zeros(5, 12))
    assert torch.allclose(alpha, alpha[:1].expand(5, -1), atol=1e-6)             # equal windows, equal α


def test_forecaster_reads_the_value_at_the_attended_lag():
    """With all weight on one lag, the prediction is an affine function of that lag's value alone."""
    model = AttentionForecaster(ForecasterConfig(window=6, query_from_window=False))
    with torch.no_grad():
        model.lag_embedding.zero_()
        model.key.weight.copy_(torch.eye(model.cfg.d_model))
        model.query.bias.zero_()
        model.lag_embedding[2] = 50.0 * model.query.bias.new_ones(model.cfg.d_model)  # key of lag 4 is huge
        model.query.bias.fill_(1.0)
    x = torch.randn(4, 6)
    pred, alpha = model(x)
    assert torch.allclose(alpha[:, 2], torch.ones(4), atol=1e-4)
    x2 = x.clone()
    x2[:, [0, 1, 3, 4, 5]] += torch.randn(4, 5)                                    # other lags change
    assert torch.allclose(model(x2)[0], pred, atol=1e-3)


@pytest.mark.parametrize("bad", [torch.randn(3, 5), torch.randn(3, 6, 1), torch.ones(3, 6, dtype=torch.long)])
def test_forecaster_refuses_bad_windows(bad):
    with pytest.raises(ValueError, match=r"float \(B, window=6\)"):
        AttentionForecaster(ForecasterConfig(window=6))(bad)


def test_click_models_differ_only_in_their_weights():
    torch.manual_seed(0)
    history = torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]])
    candidate = torch.tensor([9, 10])
    target = ClickModel(DINConfig(num_items=20, pooling="target"))
    mean = ClickModel(DINConfig(num_items=20, pooling="mean"))
    mean.load_state_dict(target.state_dict())
    logit, alpha = target(history, candidate)
    _, alpha_mean = mean(history, candidate)
    assert logit.shape == (2,) and alpha.shape == (2, 4)
    assert torch.allclose(alpha_mean, torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0], [0.5, 0.5, 0, 0]]))
    assert (alpha[history == 0] == 0).all() and torch.allclose(alpha.sum(1), torch.ones(2))
    other = target(history, torch.tensor([11, 12]))[1]
    assert not torch.allclose(other, alpha)                                        # α depends on the candidate


def test_click_model_refuses_bad_input():
    model = ClickModel(DINConfig(num_items=20))
    with pytest.raises(ValueError, match=r"history \(B, L\) and candidate \(B,\)"):
        model(torch.tensor([[1, 2]]), torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="pooling must be one of"):
        ClickModel(DINConfig(pooling="max"))


def test_text_classifier_pools_real_words_only():
    torch.manual_seed(0)
    model = PooledTextClassifier(TextClassifierConfig(vocab_size=30)).eval()
    ids = torch.tensor([[4, 5, 6, 0, 0], [7, 0, 0, 0, 0]])
    logits, alpha = model(ids)
    assert logits.shape == (2, 2) and (alpha[ids == 0] == 0).all()
    assert torch.allclose(alpha.sum(1), torch.ones(2)) and alpha[1, 0] == 1
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], 1)              # more padding: same answer
    assert torch.allclose(model(padded)[0], logits, atol=1e-6)
    mean = PooledTextClassifier(TextClassifierConfig(vocab_size=30, pooling="mean"))
    assert torch.allclose(mean(ids)[1][0], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0, 0]))
    with pytest.raises(ValueError, match="vocabulary has 30"):
        model(torch.tensor([[30]]))
    with pytest.raises(ValueError, match=r"\(B, T\) long"):
        model(torch.ones(2, 3))


# --- baselines and metrics ------------------------------------------------------------------------

def test_baselines_and_mase_on_a_made_up_series():
    t = np.arange(120, dtype=np.float64)
    values = 0.5 * t + 3 * np.sin(2 * np.pi * t / 12)                               # trend + season
    index = np.arange(100, 120)
    np.testing.assert_allclose(timeseries.seasonal_naive(values, index, 12), values[index - 12])
    # the seasonal-naive error is the trend over a year, 6, everywhere: MASE of it on itself is 1
    assert timeseries.mase(values[index - 12], values[index], values[:100], 12) == pytest.approx(1.0)
    x, target, _ = timeseries.make_windows(values, 24)
    weights = timeseries.fit_linear_ar(x, target)                                   # exact: d_t = d_{t-12}
    np.testing.assert_allclose(timeseries.predict_linear_ar(weights, x), target.double().numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="differ in shape"):
        timeseries.mae(np.zeros(3), np.zeros(4))


def test_top1_hit_rate_counts_clicked_examples_only():
    data = recsys.Clicks(history=torch.tensor([[6, 7, 8], [1, 2, 3], [4, 5, 0]]),
                         candidate=torch.tensor([11, 9, 10]), label=torch.tensor([0.0, 1.0, 1.0]),
                         relevant=torch.tensor([-1, 2, 0]))
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.1, 0.2, 0.7], [0.3, 0.7, 0.0]])   # a hit, then a miss
    assert recsys.top1_hit_rate(weights, data) == 0.5
    with pytest.raises(ValueError, match="must match history"):
        recsys.top1_hit_rate(weights[:, :2], data)


# --- figures and the widget -----------------------------------------------------------------------

def test_figures_draw_their_data_and_check_labels():
    ax = plot_lag_attention(np.array([0.1, 0.2, 0.3, 0.4]), season=2)
    bars = ax.patches
    assert [b.get_height() for b in bars] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert bars[1].get_facecolor() != bars[0].get_facecolor() == bars[2].get_facecolor()  # lags 2, 4 marked
    ax = plot_history_attention([0.5, 0.5], [11, 12], relevant=1)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["11", "12"]
    with pytest.raises(ValueError, match="2 entries, but 3 item labels"):
        plot_history_attention([0.5, 0.5], [1, 2, 3])
    ax = plot_word_attention(["bad", "value"], torch.tensor([0.2, 0.8]))
    assert [t.get_text() for t in ax.texts] == ["bad", "value"]
    light, dark = (t.get_bbox_patch().get_facecolor() for t in ax.texts)
    assert sum(dark[:3]) < sum(light[:3])                                           # more weight, darker
    with pytest.raises(ValueError, match="finite 1-D"):
        plot_word_attention(["a"], [float("nan")])


def test_words_the_model_saw_as_unk_are_marked():
    ax = plot_word_attention(["frobnicate", "value"], torch.tensor([0.7, 0.3]), unknown=[True, False])
    unk, known = ax.texts
    assert unk.get_text() == "frobnicate?" and unk.get_fontstyle() == "italic"
    assert unk.get_bbox_patch().get_linestyle() == "--" and known.get_text() == "value"
    assert known.get_fontstyle() == "normal" and "<unk>" in ax.get_title(loc="left")
    assert "<unk>" not in plot_word_attention(["a"], [1.0]).get_title(loc="left")        # nothing unknown: no note
    with pytest.raises(ValueError, match="unknown has 1 entries for 2 words"):
        plot_word_attention(["a", "b"], [0.5, 0.5], unknown=[True])


def test_example_picker_redraws_the_chosen_example():
    drawn = []

    def draw(i):
        drawn.append(i)
        plot_lag_attention(np.eye(5)[i], ax=plt.subplots()[1])

    box = example_picker(draw, 5, description="month")
    slider = find_widget(box, "month")
    assert slider is not None and (slider.min, slider.max) == (0, 4) and drawn == [0]
    slider.value = 3
    assert drawn == [0, 3]
    heights = [b.get_height() for b in plt.figure(plt.get_fignums()[-1]).axes[0].patches]
    assert heights == [0, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="at least 1"):
        example_picker(draw, 0)
