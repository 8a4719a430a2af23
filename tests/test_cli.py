"""The command line's own behaviour (each command's work is tested with its module)."""

import pytest

from attnflex_lab.__main__ import main


def test_help_lists_the_commands(capsys):
    # in this process: `python -m attnflex_lab` itself is started by test_cli_train's SIGKILL test
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("doctor", "bench", "train", "flex", "serve", "progress"):
        assert command in out
