"""Exercises with checks that say what is wrong, and model answers on request.

Each lesson registers its exercises in ``exercises/lessonNN.py``. In a notebook::

    from attnflex_lab.exercises import check, hint, progress, show_solution

    def softmax_with_temperature(x, tau):
        ...                       # the learner's code
    check("00.softmax_temperature", softmax_with_temperature)
    hint("00.softmax_temperature")            # the next of a few graduated hints, one per call
    show_solution("00.softmax_temperature")   # only when you want to see the model answer
    progress()                                # every exercise by lesson: passed / attempted / not attempted

``check`` runs the learner's function and the model answer on the same random inputs and compares
them. An untouched stub (``raise NotImplementedError``) is reported, not failed, so a notebook runs
top to bottom before the learner has written anything; a wrong answer raises ``ExerciseError``
with the shapes or the entries that differ. Each check is recorded in the learner's progress file
(``progress_file.py``); ``hint`` counts there how many hints were read.

An exercise whose answer the package already implements names that implementation in ``guards``
(and a derivation exercise sets ``no_autograd``): the check runs the learner's function with those
switched off, so a wrapper around the package's own code is refused (``guard.py`` says how, and how
another lesson adopts it).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import guard
from . import progress_file as _progress

_REGISTRY: dict[str, Exercise] = {}


class ExerciseError(AssertionError):
    """The learner's answer is wrong; the message says how."""


@dataclass
class Exercise:
    id: str                                   # "NN.short_name", NN = lesson number
    prompt: str                               # one line: what to write
    solution: Callable                        # the model answer (shown by show_solution)
    make_inputs: Callable[[torch.Generator], tuple]  # random arguments for one trial
    hint: str = ""                            # shown when the answer is wrong
    hints: tuple[str, ...] = ()               # graduated: a nudge first, the near-answer last
    atol: float = 1e-6                        # tolerances for torch.allclose-style comparison
    rtol: float = 1e-5
    trials: int = 5                           # random input sets tried
    compare: Callable | None = field(default=None, repr=False)  # custom (got, expected) -> problem or None
    guards: tuple[str, ...] = ()              # "module:function" switched off while the learner's code runs
    no_autograd: bool = False                 # derive it: the learner's code runs under torch.no_grad()
    reference: Callable | None = field(default=None, repr=False)  # expected output, where running the
    # model answer would change the inputs (a training loop trains the model it is given); default solution

    def graduated_hints(self) -> tuple[str, ...]:
        return self.hints or ((self.hint,) if self.hint else ())


@dataclass
class Feedback:
    id: str
    status: str    # "correct" | "not attempted" | "hint"
    message: str

    def __str__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        color = {"correct": "#1a7f37", "hint": "#0969da"}.get(self.status, "#9a6700")
        return f"<div style='color:{color}'><b>{self.message}</b></div>"


def register(exercise: Exercise) -> Exercise:
    if exercise.id in _REGISTRY:
        raise ValueError(f"exercise {exercise.id!r} is registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("lesson"):
            importlib.import_module(f"{__name__}.{info.name}")


def get(exercise_id: str) -> Exercise:
    _load_all()
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"no exercise {exercise_id!r}; known exercises: {known}") from None


def all_exercises() -> list[Exercise]:
    _load_all()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def describe_difference(got, expected, atol: float, rtol: float, name: str = "output") -> str | None:
    """None when ``got`` matches ``expected``; otherwise a sentence saying how it differs."""
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{name} should be a tuple of {len(expected)} items, got {type(got).__name__}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            problem = describe_difference(g, e, atol, rtol, name=f"{name}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(got, torch.Tensor):
        return f"{name} should be a torch.Tensor, got {type(got).__name__}"
    if got.shape != expected.shape:
        return f"{name} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if torch.isnan(got).any() and not torch.isnan(expected).any():
        return f"{name} contains NaN at {int(torch.isnan(got).sum())} entries"
    got_d, exp_d = got.detach().double(), expected.detach().double()
    bad = ~torch.isclose(got_d, exp_d, atol=atol, rtol=rtol)
    if not bad.any():
        return None
    err = (got_d - exp_d).abs().masked_fill(~bad, 0)
    worst = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
    return (f"{name}: {int(bad.sum())} of {bad.numel()} entries differ; worst at index {worst}: "
            f"got {got_d[worst].item():.6g}, expected {exp_d[worst].item():.6g}")


def check(exercise_id: str, learner_fn: Callable, *, seed: int = 0) -> Feedback:
    """Grade ``learner_fn`` against the model answer on random inputs; raise with a clear message if wrong.

    The result is recorded in the learner's progress file: passed, or attempted after a wrong answer.
    """
    ex = get(exercise_id)
    try:
        feedback = _grade(ex, learner_fn, seed)
    except ExerciseError:
        _progress.update(ex.id, outcome="attempted")
        raise
    if feedback.status == "correct":
        _progress.update(ex.id, outcome="passed")
    return feedback


def _run_guarded(ex: Exercise, learner_fn: Callable, args: tuple):
    """The learner's output with the exercise's guards on; ExerciseError if the answer leaned on them."""
    try:
        with guard.switched_off(ex.guards, ex.no_autograd):
            return learner_fn(*args)
    except NotImplementedError:
        raise
    except Exception as err:
        why = guard.tripped(err)
        if why == "guard":
            names = ", ".join(spec.replace(":", ".") for spec in ex.guards)
            raise ExerciseError(f"{ex.id}: your answer calls the package's own implementation ({names}), "
                                "which this check switches off. Write it from torch operations; "
                                f"hint({ex.id!r}) helps.") from None
        if why == "autograd" and ex.no_autograd:
            raise ExerciseError(f"{ex.id}: autograd is off in this check (torch.no_grad), so the "
                                "gradient must be derived by hand, not asked of autograd; "
                                f"hint({ex.id!r}) helps.") from None
        raise


def _grade(ex: Exercise, learner_fn: Callable, seed: int) -> Feedback:
    gen = torch.Generator().manual_seed(seed)
    for trial in range(ex.trials):
        args = ex.make_inputs(gen)
        expected = (ex.reference or ex.solution)(*args)
        try:
            got = _run_guarded(ex, learner_fn, args)
        except NotImplementedError:
            return Feedback(ex.id, "not attempted",
                            f"{ex.id}: not attempted yet. {ex.prompt} "
                            f"(hint({ex.id!r}) gives a hint, show_solution({ex.id!r}) a model answer)")
        problem = (ex.compare(got, expected) if ex.compare
                   else describe_difference(got, expected, ex.atol, ex.rtol))
        if problem:
            shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else repr(a)
                               for a in args)
            hint_text = f"\nHint: {ex.hint}" if ex.hint else ""
            raise ExerciseError(f"{ex.id}: not yet right (trial {trial + 1}, inputs {shapes}).\n"
                                f"{problem}{hint_text}")
    return Feedback(ex.id, "correct", f"{ex.id}: correct on {ex.trials} random inputs.")


def hint(exercise_id: str) -> Feedback:
    """The next graduated hint for an exercise (one more each call); after the last, where to look."""
    ex = get(exercise_id)
    hints = ex.graduated_hints()
    seen = int(_progress.load().get(ex.id, {}).get("hints", 0))
    if seen >= len(hints):
        return Feedback(ex.id, "hint", f"{ex.id}: no more hints ({len(hints)} given). "
                                       f"show_solution({ex.id!r}) shows a model answer.")
    _progress.update(ex.id, hint_shown=True)
    return Feedback(ex.id, "hint", f"{ex.id}, hint {seen + 1} of {len(hints)}: {hints[seen]}")


def progress() -> _progress.Progress:
    """Every exercise by lesson as passed / attempted / not attempted, read from the progress file."""
    return _progress.progress()


def show_solution(exercise_id: str) -> str:
    """The model answer's source code (printed, and returned)."""
    source = textwrap.dedent(inspect.getsource(get(exercise_id).solution))
    print(source)
    return source


__all__ = ["Exercise", "ExerciseError", "Feedback", "all_exercises", "check", "describe_difference",
           "get", "hint", "progress", "register", "show_solution"]
