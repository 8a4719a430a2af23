"""One-line errors for the command line: a user's mistake prints ``error: ...`` and exits 2.

Every subcommand (train, serve, flex, bench, doctor) raises ``UsageError`` for what the user can
fix (a flag out of range, a folder in use, a checkpoint that cannot be used), naming the flag and
what it accepts. ``run_command`` turns that into one line on stderr and exit status 2; a traceback
is for bugs, or for ``--debug`` (which prints it as well).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

EXIT_USAGE = 2
DEBUG_FLAG = "--debug"


class UsageError(Exception):
    """A mistake the user can fix; the message names the flag and what it accepts."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are UsageErrors (one line, exit 2), not usage text plus an error."""

    def error(self, message: str):  # argparse's hook for a bad command line; must not return
        raise UsageError(f"{message} (see {self.prog} --help)")


def int_in_range(flag: str, value: int | None, low: int, high: int | None = None) -> None:
    """UsageError unless ``low <= value <= high`` (None: not given, nothing to check)."""
    if value is None:
        return
    if value < low or (high is not None and value > high):
        accepted = f"{low}..{high}" if high is not None else f">= {low}"
        raise UsageError(f"{flag} must be an integer in {accepted}, got {value}")


def _user_error_types() -> tuple[type[BaseException], ...]:
    """UsageError plus the lab's own refusals of user input, from the modules already imported
    (an exception of a module never imported cannot have been raised; importing torch to name it
    would cost seconds on every error)."""
    types: list[type[BaseException]] = [UsageError]
    for module, names in (("attnflex_lab.training.checkpoint", ("CheckpointError",)),
                          ("attnflex_lab.training.folders", ("CheckpointDirError",)),
                          ("attnflex_lab.serve.predictor", ("ServeSetupError",))):
        loaded = sys.modules.get(module)
        if loaded is not None:
            types += [getattr(loaded, name) for name in names]
    return tuple(types)


def run_command(command: Callable[[list[str]], int], argv: list[str]) -> int:
    """Run ``command(argv)``; a user error becomes ``error: ...`` on stderr and exit status 2.

    ``--debug`` anywhere in ``argv`` is taken out and makes user errors print their traceback too."""
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        return command(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not isinstance(err, _user_error_types()):
            raise                                  # a bug: the traceback is what a report needs
        if debug:
            traceback.print_exc(file=sys.stderr)
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {message.removeprefix('error: ')}", file=sys.stderr)
        return EXIT_USAGE
