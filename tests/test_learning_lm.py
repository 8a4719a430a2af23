"""Learning check (cpu profile): lesson 05's short TinyGPT run reads more than the previous character.

The lesson trains recipe "lm" with ``SHORT_RUN`` and claims that in cpu its held-out loss falls below
the corpus's bigram entropy (the best any model that sees one previous character can do), and so
below the unigram entropy too. Smoke checks only the unigram bound, in the notebook.
"""

import math

import pytest
import torch

from attnflex_lab.recipes import train_recipe
from attnflex_lab.recipes.lm import SHORT_RUN, char_entropies


def test_char_entropies_of_known_texts():
    cycle = torch.arange(4).repeat(50)                       # 0 1 2 3 0 1 ...: each next char is certain
    h1, h2 = char_entropies(cycle, 4)
    assert math.isclose(h1, math.log(4)) and h2 == 0.0
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 3, (20_000,), generator=gen)    # independent draws: the past tells nothing
    h1, h2 = char_entropies(noise, 5)                        # two unused symbols cost nothing
    assert abs(h1 - math.log(3)) < 1e-3 and abs(h2 - h1) < 2e-3


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_tinygpt_beats_the_bigram_entropy():
    metrics, run, history = train_recipe("lm", profile_name="cpu", seed=0, progress=False, **SHORT_RUN["cpu"])
    h1, h2 = char_entropies(run.train_data.tokens, run.extras["tokenizer"].vocab_size)
    print({"val_loss": metrics["val_loss"], "H1": h1, "H2": h2, "seconds": metrics["seconds"]})
    assert metrics["val_loss"] < h2 < h1, (metrics["val_loss"], h2, h1)
    assert history.steps[0]["loss"] > h1                      # it started as a guesser
