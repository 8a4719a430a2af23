"""viz.explanations: lesson 12's image × method picker draws the chosen map over the chosen image."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.viz.explanations import explanation_picker, explanation_view
from tests.widgets import find_widget

N, P = 3, 16
IMAGES = torch.arange(N * 64, dtype=torch.float32).view(N, 1, 8, 8) / (N * 64)   # (N, 1, 8, 8)
MAPS = {"attention": torch.rand(N, P, generator=torch.Generator().manual_seed(0)),
        "integrated gradients": torch.randn(N, P, generator=torch.Generator().manual_seed(1))}
DELETION = {"attention": torch.tensor([0.4, 0.5, 0.6]), "integrated gradients": torch.tensor([0.1, 0.2, 0.3])}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _drawn():
    """(image array of the latest figure's first image layer, its title)."""
    ax = plt.figure(plt.get_fignums()[-1]).axes[0]
    return np.asarray(ax.images[0].get_array()), ax.get_title()


def test_the_view_is_the_chosen_image_and_method():
    view = explanation_view(IMAGES, MAPS, 2, "integrated gradients", deletion=DELETION,
                            signed=("integrated gradients",))
    np.testing.assert_allclose(view["image"], IMAGES[2, 0].double().numpy())
    np.testing.assert_allclose(view["heat"], MAPS["integrated gradients"][2].double().view(4, 4).numpy())
    assert view["signed"] and view["deletion"] == pytest.approx(0.3)
    assert list(view["ranking"][:1]) == [int(MAPS["integrated gradients"][2].argmax())]


def test_moving_the_controls_redraws_that_map_over_that_image():
    box = explanation_picker(IMAGES, MAPS, deletion=DELETION, signed=("integrated gradients",))
    menu, slider = find_widget(box, "method"), find_widget(box, "image")
    assert list(menu.options) == list(MAPS) and (slider.min, slider.max) == (0, N - 1)
    heat, title = _drawn()                      # attention, image 0: the sequential overlay (image first)
    np.testing.assert_allclose(heat, IMAGES[0, 0].numpy(), rtol=1e-6)
    assert title.startswith("attention") and "0.40" in title
    slider.value = 2
    menu.value = "integrated gradients"         # signed: the map itself is the first image layer
    heat, title = _drawn()
    np.testing.assert_allclose(heat, MAPS["integrated gradients"][2].view(4, 4).numpy(), rtol=1e-6)
    assert "0.30" in title and f"top patches {int(MAPS['integrated gradients'][2].argmax())}," in title
    assert len(plt.figure(plt.get_fignums()[-1]).axes) == 2      # the signed map has its colour bar


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"maps\['attention'\] must be \(N=3, P\)"):
        explanation_picker(IMAGES, {"attention": torch.rand(2, P)})
    with pytest.raises(ValueError, match="method must be one of"):
        explanation_view(IMAGES, MAPS, 0, "saliency")
    with pytest.raises(ValueError, match=r"deletion\['attention'\]"):
        explanation_view(IMAGES, MAPS, 0, "attention", deletion={"attention": torch.rand(2)})


def test_the_site_can_precompute_every_state_of_the_lessons_picker(monkeypatch):
    """Lesson 12 shows 12 images × 4 methods: all 48 states fit the site's bound of 50, none dropped."""
    from attnflex_lab.viz import explanations, site_states

    captured = {}
    original = explanations.widgets.interactive_output

    def recording(f, controls):
        captured.update(f=f, controls=controls)
        return original(f, controls)

    monkeypatch.setattr(explanations.widgets, "interactive_output", recording)
    images = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    maps = {name: torch.randn(12, P) for name in ("attention", "rollout", "grad×input", "integrated gradients")}
    explanation_picker(images, maps, signed=("grad×input", "integrated gradients"))
    record = site_states.precompute(captured["f"], captured["controls"])
    assert record["note"] is None and len(record["states"]) == 4 * 12
    assert [c["description"] for c in record["controls"]] == ["method", "image"]
