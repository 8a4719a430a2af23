"""Every recipe the train CLI knows can be served: a codec per recipe, its network found from the
weights alone, its example answered with attention weights, its bad input refused clearly."""

from __future__ import annotations

import json

import pytest
import torch

from attnflex_lab import recipes
from attnflex_lab.serve.codecs import CODECS, InputError, codec_for
from attnflex_lab.serve.predictor import matching_codecs

from .single_thread import one_thread_per_module  # noqa: F401 (autouse: one torch thread)

pytestmark = pytest.mark.timeout(60)
TWINS = [{"sort", "reverse"}, {"dates_long", "dates_long_noattn"}]  # one network, two tasks


def test_every_registered_recipe_has_a_codec():
    assert set(recipes.names()) == set(CODECS)


@pytest.fixture(scope="module")
def fresh_models() -> dict:
    torch.manual_seed(0)
    return {name: codec_for(name, "smoke").new_model().eval() for name in sorted(CODECS)}


def test_weights_alone_identify_the_recipe(fresh_models):
    for name, model in fresh_models.items():
        found = {c.recipe for c in matching_codecs(model.state_dict(), profiles=["smoke"])}
        twins = next((t for t in TWINS if name in t), {name})
        assert found == twins, f"{name}'s weights matched {sorted(found)}"
    cpu_sort = codec_for("sort", "cpu").new_model().state_dict()
    assert {c.profile for c in matching_codecs(cpu_sort, tasks=["sort"], profiles=["smoke", "cpu"])} == {"cpu"}


def attention_rows(attention: dict) -> torch.Tensor:
    weights = torch.tensor(attention["weights"])
    assert list(weights.shape) == attention["shape"] and weights.dim() == len(attention["axes"])
    return weights


@pytest.mark.parametrize("name", sorted(CODECS))
def test_each_codec_answers_its_example_with_attention(fresh_models, name):
    codec = codec_for(name, "smoke")
    with torch.inference_mode():
        answer = codec.predict(fresh_models[name], codec.encode(codec.example()))
    json.dumps(answer, allow_nan=False)                   # what the server sends must be JSON
    if name == "dates_long_noattn":
        assert answer["attention"] is None and "no attention" in answer["note"]
        return
    weights = attention_rows(answer["attention"])
    assert (weights >= 0).all()
    axes = answer["attention"]["axes"]
    if axes[-2:] == ["region_row", "region_col"] or axes[-2:] == ["patch_row", "patch_col"]:
        sums = weights.flatten(-2).sum(-1)                # one distribution over the image grid
    else:
        sums = weights.sum(-1)                            # one distribution per query row
    if name == "vit":                                     # [CLS] also attends to itself
        assert (sums <= 1 + 1e-3).all() and (sums > 0).all()
    else:
        torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-3, rtol=0)
    if name.startswith("dates"):
        assert len(answer["attention"]["input_labels"]) == weights.shape[-1] == len(codec.example())


@pytest.mark.parametrize(("name", "value", "words"), [
    ("digits", [0.5] * 63, "64 pixel values"),
    ("digits", [[0.5] * 8] * 7, "8×8"),
    ("digits", [16.0] * 64, "divide by 16"),
    ("digits", [float("nan")] + [0.0] * 63, "finite"),
    ("digits_canvas", [0.5] * 64, "256 pixel values"),
    ("vit", "an image", "got str"),
    ("dates", "3 March 2021 ☃", "does not know: ['☃']"),
    ("dates", "", "1..29 characters"),
    ("dates", 20210303, "got int"),
    ("lm", "x" * 33, "1..32 characters"),
    ("lm", "once upon a time ~", "outside the model's vocabulary: ['~']"),
    ("sort", [1, 2, 3, 4, 5, -1], "outside 0..9"),
])
def test_codecs_refuse_bad_input_with_a_message(name, value, words):
    with pytest.raises(InputError) as caught:
        codec_for(name, "smoke").encode(value)
    assert words in str(caught.value)


def test_lm_options_are_checked():
    codec = codec_for("lm", "smoke")
    assert codec.options({"input": "a"}) == {"max_new_tokens": 32}
    assert codec.options({"input": "a", "max_new_tokens": 5}) == {"max_new_tokens": 5}
    for bad in (0, 10_000, 2.5, "3", True):
        with pytest.raises(InputError, match="max_new_tokens"):
            codec.options({"input": "a", "max_new_tokens": bad})


@pytest.mark.parametrize("prompt, n_new", [("once upon", 8), ("ab" * 16, 6)])  # fits a block; crops
def test_lm_answers_by_argmax_and_leaves_the_random_state_alone(fresh_models, prompt, n_new):
    """Planted bug (today's code): top-k 1 through multinomial draws from the global RNG."""
    codec, model = codec_for("lm", "smoke"), fresh_models["lm"]
    idx = codec.encode(prompt)[0]
    with torch.inference_mode():
        want = idx
        for _ in range(n_new):                               # the reference: argmax, cropped context
            logits = model(want[:, -model.cfg.block_size:])[:, -1]
            want = torch.cat([want, logits.argmax(-1, keepdim=True)], dim=1)
        state = torch.get_rng_state()
        answer = codec.predict(model, (idx,), max_new_tokens=n_new)
    assert torch.equal(torch.get_rng_state(), state)
    assert answer["prediction"] == codec.tokenizer.decode(want[0, idx.shape[1]:])
