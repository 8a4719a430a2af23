"""Attention kernels: FlashAttention-2 in plain PyTorch (``flash``), sliding-window, linear and grouped-query
attention (``efficient``), the KV cache and cached decoding (``kv_cache``), peak-memory measurement (``memory``),
the IO model that says why tiling is fast (``io_model``) and an optional Triton FlashAttention (``triton_flash``,
loaded through ``load_triton_flash``)."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from . import io_model


def triton_available() -> bool:
    """True where the ``triton`` package is installed (Linux wheels; not macOS or Windows)."""
    return importlib.util.find_spec("triton") is not None


def load_triton_flash(interpret: bool | None = None) -> ModuleType:
    """The ``triton_flash`` module, its kernels compiled (``interpret=False``, CUDA) or run by Triton's
    interpreter on the CPU (``interpret=True``); ``None`` interprets where CUDA is absent.

    Triton builds its own library (``tl.max``, ``tl.sum``, ...) for one mode when it is imported, reading
    ``TRITON_INTERPRET``; so ``interpret=True`` sets that variable for this process before Triton's first
    import, and a process that imported Triton in the other mode gets a RuntimeError saying so.
    """
    if not triton_available():
        raise ImportError("Triton is not installed: `pip install 'attnflex-lab[triton]'` (Linux only; "
                          "macOS and Windows have no Triton wheels)")
    if interpret is None:
        import torch

        interpret = not torch.cuda.is_available()
    if "triton" in sys.modules and _triton_interprets() != interpret:
        raise RuntimeError(f"Triton was already imported {'without' if interpret else 'with'} TRITON_INTERPRET=1 in "
                           f"this process, so its kernels cannot be {'interpreted' if interpret else 'compiled'} here; "
                           "restart Python (the kernel) and load this first")
    if interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    elif os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("TRITON_INTERPRET is set: unset it (before Python starts) to compile the kernels")
    from . import triton_flash

    return triton_flash


def _triton_interprets() -> bool:
    import triton.language as tl
    from triton.runtime.jit import JITFunction

    return not isinstance(tl.standard.max, JITFunction)   # built as an InterpretedFunction under the variable


__all__ = ["io_model", "load_triton_flash", "triton_available"]
