"""Every registered exercise: its model answer passes its own check, a stub is 'not attempted'."""

import pytest
import torch

from attnflex_lab import exercises
from attnflex_lab.exercises import ExerciseError, check, describe_difference, show_solution

ALL = exercises.all_exercises()


def test_exercises_are_registered():
    assert any(ex.id == "00.softmax_temperature" for ex in ALL)


@pytest.mark.parametrize("ex", ALL, ids=[ex.id for ex in ALL])
def test_model_answer_passes(ex):
    assert check(ex.id, ex.solution).status == "correct"


@pytest.mark.parametrize("ex", ALL, ids=[ex.id for ex in ALL])
def test_untouched_stub_is_not_attempted(ex):
    def stub(*args):
        raise NotImplementedError

    feedback = check(ex.id, stub)
    assert feedback.status == "not attempted" and "show_solution" in feedback.message


@pytest.mark.parametrize("ex", ALL, ids=[ex.id for ex in ALL])
def test_show_solution_returns_source(ex, capsys):
    source = show_solution(ex.id)
    assert source.startswith("def ") and source in capsys.readouterr().out


def test_wrong_answer_is_explained():
    with pytest.raises(ExerciseError) as err:
        check("00.softmax_temperature", lambda s, tau: torch.softmax(s, dim=0))
    message = str(err.value)
    assert "entries differ" in message and "worst at index" in message and "Hint:" in message


def test_wrong_shape_is_explained():
    with pytest.raises(ExerciseError, match=r"has shape \(3,\), expected \(3, 6\)"):
        check("00.softmax_temperature", lambda s, tau: torch.softmax(s / tau, -1).sum(-1))


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(KeyError, match="00.softmax_temperature"):
        check("99.nope", lambda: None)


def test_describe_difference():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert describe_difference(a, a.clone(), 1e-6, 1e-6) is None
    b = a.clone()
    b[1, 0] = 3.5
    assert "1 of 4 entries differ; worst at index (1, 0): got 3.5, expected 3" in describe_difference(b, a, 1e-6, 1e-6)
    assert "contains NaN" in describe_difference(torch.full((2, 2), float("nan")), a, 1e-6, 1e-6)
    assert "should be a torch.Tensor" in describe_difference([1, 2], a, 1e-6, 1e-6)
