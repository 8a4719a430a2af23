"""The Triton FlashAttention kernel, tested without a GPU in Triton's interpreter.

Triton builds its own library for one mode when it is first imported (TRITON_INTERPRET=1 read then), and
the test worker may import Triton in compiled mode elsewhere (torch.compile), so the interpreter checks run
in a fresh process with the variable set before any import: tests/triton_interpreter_checks.py (planted bugs
listed there). Where Triton is absent (macOS, Windows) they skip and say so.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from attnflex_lab import kernels

CHECKS = Path(__file__).with_name("triton_interpreter_checks.py")


@pytest.mark.skipif(not kernels.triton_available(), reason="Triton is not installed (pip install "
                    "'attnflex-lab[triton]'; Linux only): the Triton kernel's interpreter checks are skipped")
def test_triton_kernel_in_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-p", "no:randomly", "-o", "addopts=", str(CHECKS)],
                         env=env, capture_output=True, text=True, timeout=300, cwd=CHECKS.parent.parent)
    assert run.returncode == 0, f"the interpreter checks failed:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout and " skipped" not in run.stdout, run.stdout[-2000:]


def test_loader_without_triton_says_how_to_install(monkeypatch):
    monkeypatch.setattr(kernels, "triton_available", lambda: False)
    with pytest.raises(ImportError, match=r"attnflex-lab\[triton\]"):
        kernels.load_triton_flash(interpret=True)
