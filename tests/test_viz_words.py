"""The hand-built word table behind lesson 01's explorer: keys are feature vectors, queries what a
word looks for, and the explorer on them shows the relations the table encodes."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from attnflex_lab.viz import explore_attention, explorer_weights, words
from tests.widgets import find_widget

SENTENCE = "a dog lay under the rug".split()


def test_each_word_has_its_features_and_queries_follow_the_relations():
    keys = words.embed(["dog", "under"])
    assert keys.shape == (2, len(words.FEATURES))
    assert set(keys[0].nonzero().flatten().tolist()) == {words.FEATURES.index("noun"),
                                                         words.FEATURES.index("animal")}
    queries = words.relation_queries(["lay", "the"])
    assert queries[0].argmax() == words.FEATURES.index("animal")      # a verb looks for an animal
    assert queries[1].argmax() == words.FEATURES.index("noun")        # a determiner for a noun


def test_on_a_new_sentence_verbs_find_subjects_and_prepositions_objects():
    w = explorer_weights(words.relation_queries(SENTENCE), words.embed(SENTENCE), temperature=1.0,
                         scaled=True)
    assert w[SENTENCE.index("lay")].argmax() == SENTENCE.index("dog")
    assert w[SENTENCE.index("under")].argmax() == SENTENCE.index("rug")
    assert w[SENTENCE.index("dog"), [0, 4]].sum() > 0.9               # "a" and "the"


def test_unknown_words_and_plain_strings_are_rejected():
    with pytest.raises(ValueError, match=r"unknown words \['cow'\]"):
        words.embed(["the", "cow"])
    with pytest.raises(TypeError, match="not one string"):
        words.embed("the cat")


def test_explorer_on_the_word_table_redraws_the_structured_map():
    box = explore_attention(words.relation_queries(SENTENCE), words.embed(SENTENCE), SENTENCE, SENTENCE)
    find_widget(box, "temperature").value = 0.05
    drawn = np.asarray(plt.figure(plt.get_fignums()[-1]).axes[0].images[0].get_array())
    assert drawn[SENTENCE.index("lay"), SENTENCE.index("dog")] > 0.99
    np.testing.assert_allclose(drawn.sum(-1), np.ones(len(SENTENCE)), rtol=1e-6)
    assert torch.tensor(drawn).argmax(-1).tolist()[3] == SENTENCE.index("rug")
