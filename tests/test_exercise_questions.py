"""The predict-then-check question widget: moved through ``interactive_output`` without a browser."""

import pytest

from attnflex_lab.exercises.questions import PLACEHOLDER, prediction
from tests.widgets import find_widget

OPTIONS = {"×2": "that is how O grows", "×4": "", "×8": "no step holds a T³ term"}


def test_the_feedback_follows_the_chosen_answer(capsys):
    box = prediction("Doubling T multiplies memory by", OPTIONS, answer="×4", why="T × T per head.")
    radio = find_widget(box, "answer")
    assert radio.value == PLACEHOLDER and "Pick an answer" in capsys.readouterr().out   # drawn once, unanswered
    radio.value = "×2"
    out = capsys.readouterr().out
    assert "Not quite: ×2" in out and "that is how O grows" in out and "The answer is ×4" in out
    radio.value = "×4"
    out = capsys.readouterr().out
    assert "Right: ×4" in out and "Not quite" not in out and "T × T per head." in out
    assert "Doubling T" in box.children[0].value


def test_a_question_whose_answer_is_not_an_option_is_refused():
    with pytest.raises(ValueError, match="not one of the options"):
        prediction("q", OPTIONS, answer="×16", why="")
    with pytest.raises(ValueError, match="reserved"):
        prediction("q", {PLACEHOLDER: "", "a": ""}, answer="a", why="")
