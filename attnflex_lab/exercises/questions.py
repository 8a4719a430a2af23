"""Predict-then-check questions: a widget that asks, takes one answer, and says why it is right or not.

A question is asked *before* the cell that measures the answer, so the learner commits to a
prediction; the feedback explains the reasoning, and the measurement below shows the number::

    from attnflex_lab.exercises.questions import prediction

    prediction("Doubling T multiplies the math kernel's memory by about",
               {"×2": "that is how O and the row statistics grow, not the T × T matrices", "×4": "", ...},
               answer="×4", why="it stores a T × T matrix per head: (2T)² = 4T²")

Built from core ipywidgets (RadioButtons + ``interactive_output``), so it works in JupyterLab and
Colab (ipywidgets 7 and 8) and the tests can move it without a browser.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

PLACEHOLDER = "(pick an answer)"


def feedback(choice: str | None, options: dict[str, str], answer: str, why: str) -> str:
    """The text shown for ``choice``: a prompt, a 'right' with the reason, or what the choice misses."""
    if choice in (None, PLACEHOLDER):
        return "Pick an answer, then run the next cell and compare with what it measures."
    if choice == answer:
        return f"Right: {choice}. {why}"
    miss = options.get(choice, "")
    return f"Not quite: {choice}{' — ' + miss if miss else ''}. The answer is {answer}: {why}"


def prediction(question: str, options: dict[str, str], answer: str, why: str) -> widgets.VBox:
    """Build (not display) a question with radio answers; ``options`` maps each answer to what it misses."""
    if answer not in options:
        raise ValueError(f"the answer {answer!r} is not one of the options {list(options)}")
    if PLACEHOLDER in options:
        raise ValueError(f"{PLACEHOLDER!r} is reserved for the unanswered state")
    choices = widgets.RadioButtons(options=[PLACEHOLDER, *options], value=PLACEHOLDER, description="answer")

    def show(choice: str) -> None:
        print(feedback(choice, options, answer, why))

    output = widgets.interactive_output(show, {"choice": choices})
    return widgets.VBox([widgets.HTML(f"<b>{html.escape(question)}</b>"), choices, output])


__all__ = ["PLACEHOLDER", "feedback", "prediction"]
