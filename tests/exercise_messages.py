"""What a learner sees when a check refuses a plausible wrong answer, shared by the lessons' exercise tests."""

import pytest

from attnflex_lab.exercises import ExerciseError, check


def assert_explained(exercise_id: str, wrong, expected_words: list[str]) -> None:
    """``check`` refuses ``wrong`` with the exercise's 'not yet right' message naming every expected word."""
    with pytest.raises(ExerciseError) as info:
        check(exercise_id, wrong)
    message = str(info.value)
    assert message.startswith(f"{exercise_id}: not yet right"), message
    for word in expected_words:
        assert word in message, f"{word!r} missing from: {message}"
