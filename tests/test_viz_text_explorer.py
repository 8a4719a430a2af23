"""The head explorer with an editable input (lesson 05): typing a new sequence redraws the heads."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attnflex_lab.viz.heads import text_head_explorer  # noqa: E402
from tests.widgets import find_widget  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _maps_for(text):
    """A stand-in model: attention weights that depend on the typed digits, (L=2, 1, H=3, T, T)."""
    if not text.isdigit():
        raise ValueError("digits only")
    x = torch.tensor([float(c) for c in text])                              # (T,)
    scores = torch.stack([torch.stack([(h + 1) * (layer + 1) * torch.outer(x, x) / 10
                                       for h in range(3)]) for layer in range(2)])  # (L, H, T, T)
    return scores.softmax(-1)[:, None], [f"out {i}" for i in range(len(text))], list(text)


def _drawn():
    fig = plt.figure(plt.get_fignums()[-1])
    ax = fig.axes[0]
    return np.asarray(ax.images[0].get_array()), [t.get_text() for t in ax.get_xticklabels()]


def test_typing_a_sequence_redraws_the_heads():
    box = text_head_explorer(_maps_for, "3141", num_layers=2, num_heads=3)
    text_box = find_widget(box, "input")
    assert text_box is not None and text_box.continuous_update is False
    assert find_widget(box, "layer").max == 1 and find_widget(box, "head").max == 2
    first, labels = _drawn()                                                # drawn once when built
    np.testing.assert_allclose(first, _maps_for("3141")[0][0, 0, 0].numpy(), rtol=1e-6)
    assert labels == list("3141")
    text_box.value = "27182"
    after, labels = _drawn()
    assert after.shape == (5, 5) and labels == list("27182")                # the new input's map
    np.testing.assert_allclose(after, _maps_for("27182")[0][0, 0, 0].numpy(), rtol=1e-6)
    find_widget(box, "head").value = 2
    find_widget(box, "layer").value = 1
    np.testing.assert_allclose(_drawn()[0], _maps_for("27182")[0][1, 0, 2].numpy(), rtol=1e-6)


def test_unreadable_text_is_reported_not_drawn(capsys):
    box = text_head_explorer(_maps_for, "12", num_layers=2, num_heads=3)
    n_figures = len(plt.get_fignums())
    find_widget(box, "input").value = "1x2"
    assert len(plt.get_fignums()) == n_figures                              # nothing new drawn
    assert "cannot read '1x2': digits only" in capsys.readouterr().out
