#!/usr/bin/env bash
# Create .venv-compat: a venv with Colab's front-end constraints, for `make test-compat`.
#
#   ipywidgets 7.7.1   what Colab ships (the lab may use only the API that 7 and 8 share)
#   torch              the oldest CPU build this machine can install without a multi-GB download
#   the lab            installed the way a notebook's Colab cell installs it: a plain (non-editable)
#                      `pip install "attnflex-lab @ <url>"`, with a file:// path instead of the URL
#
# Which torch: COMPAT_TORCH if set (a pip requirement, e.g. "torch==2.3.1", from PyTorch's CPU-only
# index; pip's find-links are searched too). Otherwise a CPU wheel
# that pip's find-links already hold (offline, no CUDA libraries); only when there is none, the
# lab's own lower bound from pyproject.toml, from PyTorch's CPU-only index. Where a machine has a
# local wheel newer than the lower bound (this project's machines hold only torch 2.13.0+cpu), the
# lower bound is NOT what gets tested: the script says so, and README's "Colab, tested locally" too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

PYTHON="${PYTHON:-python3}"
VENV="${COMPAT_VENV:-.venv-compat}"
IPYWIDGETS="${COMPAT_IPYWIDGETS:-ipywidgets==7.7.1}"
LOWER=$(sed -n 's/^ *"torch>=\([0-9.]*\)".*/\1/p' pyproject.toml)
[ -n "$LOWER" ] || { echo "setup_compat: no 'torch>=X' line in pyproject.toml" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

if [ -n "${COMPAT_TORCH:-}" ]; then
    "$PY" -m pip install --quiet "$COMPAT_TORCH" --index-url https://download.pytorch.org/whl/cpu
elif ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    # the oldest local CPU wheel (pip's find-links), else the lower bound from PyTorch's CPU index
    LOCAL=$("$PY" -m pip config get global.find-links 2>/dev/null || true)
    WHEEL=""
    for dir in $LOCAL ${PIP_FIND_LINKS:-}; do
        [ -d "$dir" ] || continue
        found=$(ls "$dir"/torch-*+cpu-*.whl 2>/dev/null | sort -V | head -n 1 || true)
        [ -n "$found" ] && { WHEEL="$found"; break; }
    done
    if [ -n "$WHEEL" ]; then
        VERSION=$(basename "$WHEEL" | cut -d- -f2)
        echo "==> torch $VERSION from a local CPU wheel ($WHEEL); the lab allows torch>=$LOWER,"
        echo "    which this machine cannot install without a CUDA download: the lower bound is untested here"
        "$PY" -m pip install --quiet "torch==$VERSION"
    else
        echo "==> torch $LOWER (the lab's lower bound), CPU build from PyTorch's CPU-only index"
        "$PY" -m pip install --quiet "torch==$LOWER.*" --index-url https://download.pytorch.org/whl/cpu
    fi
fi

TORCH_NOW=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null)
echo "==> the lab, as a Colab cell installs it (non-editable, from a path), with $IPYWIDGETS"
# One resolver run: the pins hold while the lab's own requirements are resolved around them.
# --no-cache-dir: pip caches a wheel built from a folder whose name looks like "name-version" (a
# clone in /tmp/ci-check did), and then installs that stale wheel for every later checkout there.
"$PY" -m pip install --quiet --no-cache-dir "$IPYWIDGETS" "torch==$TORCH_NOW" "attnflex-lab @ file://$ROOT" \
    "pytest>=7.4" "nbval>=0.10" "ipykernel>=6.20" "nbformat>=5.7" "pytest-xdist>=3.0" "pytest-timeout>=2.1" \
    "hypothesis>=6.80"
"$PY" - <<'EOF'
import ipywidgets, torch
print(f"==> .venv-compat ready: ipywidgets {ipywidgets.__version__}, torch {torch.__version__}")
assert ipywidgets.__version__.startswith("7."), "the compat venv must hold ipywidgets 7 (Colab's)"
EOF
