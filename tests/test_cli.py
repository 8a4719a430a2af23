"""The command line's own behaviour (each command's work is tested with its module)."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "attnflex_lab", *args], capture_output=True, text=True,
                          timeout=300)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("doctor", "bench", "train"):
        assert command in result.stdout
