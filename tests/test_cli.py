"""The command line's own behaviour (each command's work is tested with its module)."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "attnflex_lab", *args], capture_output=True, text=True,
                          timeout=300)


def test_bench_rejects_an_unknown_benchmark_and_lists_the_known_ones():
    result = run("bench", "no_such_bench")
    assert result.returncode == 2
    assert "unknown benchmark(s) ['no_such_bench']" in result.stderr and "'ops'" in result.stderr


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("doctor", "bench", "train"):
        assert command in result.stdout
