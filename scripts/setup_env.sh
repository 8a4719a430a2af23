#!/usr/bin/env bash
# Create .venv and install the lab into it (idempotent; `make` reruns it only when inputs change).
# A CPU machine gets a CPU build of torch: never the multi-GB CUDA download.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "attnflex-lab needs Python 3.10 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)." >&2
    echo "Fix: install Python 3.10+ and run 'make PYTHON=python3.11 lab' (or test)." >&2
    exit 1
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

has_nvidia_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; }

if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    if has_nvidia_gpu; then
        echo "==> NVIDIA GPU found: installing a CUDA build of torch"
        "$PY" -m pip install --no-compile "torch>=2.3"
    else
        echo "==> No NVIDIA GPU: installing a CPU build of torch"
        # First a CPU wheel this machine already holds (pip's configured find-links), offline;
        # otherwise PyTorch's CPU-only index. Either way no CUDA libraries are fetched.
        "$PY" -m pip install --no-compile --no-index --no-deps "torch>=2.3" 2>/dev/null \
            || "$PY" -m pip install --no-compile "torch>=2.3" --index-url https://download.pytorch.org/whl/cpu
        # (that index alone, which also carries torch's dependencies: with a second index pip could
        # prefer a newer CUDA build from it)
    fi
fi

echo "==> Installing attnflex-lab with its dev extra"
# dev carries the triton extra on Linux only (an environment marker): macOS and Windows have no Triton wheels
"$PY" -m pip install --quiet --no-compile -e ".[dev]"
# pip byte-compiles what it installs one file at a time (half of this step's two minutes on two cores);
# compileall does the same on every core. Its status is ignored as pip ignores it: a few files are
# written for newer Pythons (torch ships one in Python 3.12's syntax) and cannot be compiled here.
"$PY" -m compileall -q -j 0 "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null 2>&1 || true
"$PY" -m ipykernel install --sys-prefix --name attnflex-lab --display-name "Python 3 (attnflex-lab)" >/dev/null
"$PY" -m attnflex_lab doctor
