"""Shipping a trained model: int8 quantization, size on disk, ``torch.export``, a latency table.

    small = quantize_int8(model)                     # nn.Linear -> dynamically quantized int8 Linear
    model_size_bytes(model), model_size_bytes(small) # the serialized state_dict, in bytes
    program = export_model(model, (x,))              # torch.export, batch dimension left dynamic
    latency_table({"eager": model, "int8": small, "exported": program.module()},
                  make_inputs=lambda b: (x[:1].expand(b, -1),), batch_sizes=(1, 32))

Quantization: torch 2.13 still ships ``torch.ao.quantization.quantize_dynamic`` but deprecates it
(a DeprecationWarning on each call, left visible here) in favour of the separate ``torchao`` package
(``quantize_(model, Int8DynamicActivationInt8WeightConfig())``), which this lab does not depend on.
ONNX: ``torch.onnx.export(..., dynamo=True)`` needs the ``onnx`` and ``onnxscript`` packages, which
the lab does not install either; ``onnx_available()`` says whether they are there.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import statistics
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..perf.flops import time_runs


def _check_module(model, what: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} needs an nn.Module, got {type(model).__name__}")


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose nn.Linear layers hold int8 weights (one scale per tensor) and
    quantize their inputs to int8 on the fly, batch by batch (dynamic quantization).

    Only nn.Linear layers change (attention projections, MLPs, heads); convolutions, embeddings and
    norms stay float32. The copy runs on the CPU only; ``model`` itself is left untouched.
    """
    _check_module(model, "quantize_int8")
    linears = [name for name, m in model.named_modules() if type(m) is nn.Linear]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: nothing to quantize")
    bad = {f"{n} ({p.dtype}, {p.device})" for n, p in model.named_parameters()
           if p.device.type != "cpu" or p.dtype != torch.float32}
    if bad:
        raise ValueError(f"quantize_int8 needs a float32 model on the CPU (int8 kernels are CPU "
                         f"only); these parameters are not: {sorted(bad)[:4]}")
    fresh = copy.deepcopy(model).eval()
    return torch.ao.quantization.quantize_dynamic(fresh, {nn.Linear}, dtype=torch.qint8)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what shipping the weights costs."""
    _check_module(model, "model_size_bytes")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _batch_size(example_inputs, what: str) -> int:
    if not isinstance(example_inputs, tuple) or not example_inputs:
        raise TypeError(f"{what} needs the example inputs as a non-empty tuple of tensors, got "
                        f"{type(example_inputs).__name__}")
    not_tensors = [i for i, x in enumerate(example_inputs) if not isinstance(x, torch.Tensor)]
    if not_tensors:
        raise TypeError(f"{what}: example input {not_tensors[0]} is a "
                        f"{type(example_inputs[not_tensors[0]]).__name__}, not a tensor")
    sizes = [tuple(x.shape) for x in example_inputs]
    if any(len(s) == 0 for s in sizes) or len({s[0] for s in sizes}) != 1:
        raise ValueError(f"{what}: every input needs the same batch size in dim 0, got shapes {sizes}")
    return sizes[0][0]


def export_model(model: nn.Module, example_inputs: tuple, *, dynamic_batch: bool = True
                 ) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode, traced on ``example_inputs``.

    With ``dynamic_batch`` (the default) dim 0 of every input is one symbolic batch size, so the
    program runs on any batch; the example then needs batch ≥ 2, because torch.export treats a size
    of 1 as a constant. Other dims (sequence length, image size) are fixed at the example's.
    Run the program with ``program.module()(*inputs)``.
    """
    _check_module(model, "export_model")
    batch = _batch_size(example_inputs, "export_model")
    dynamic_shapes = None
    if dynamic_batch:
        if batch < 2:
            raise ValueError(f"export_model(dynamic_batch=True) needs an example batch of at least 2 "
                             f"(torch.export fixes a size-1 dim), got batch {batch}: repeat the "
                             f"example, or pass dynamic_batch=False")
        dim = torch.export.Dim("batch", min=1)
        dynamic_shapes = tuple({0: dim} for _ in example_inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.export.export(model, example_inputs, dynamic_shapes=dynamic_shapes)
    finally:
        model.train(was_training)


def onnx_available() -> bool:
    """Whether ``torch.onnx.export(..., dynamo=True)`` can run here (it needs onnx and onnxscript)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


def _time_call(fn: Callable, inputs: tuple) -> float:
    return time_runs(lambda: fn(*inputs), repeats=1, warmup=0)[0]  # synchronised: work, not launch


def latency_table(variants: dict[str, Callable], make_inputs: Callable[[int], tuple], *,
                  batch_sizes=(1, 32), repeats: int = 30, warmup: int = 3) -> list[dict]:
    """Time every variant on the same inputs, side by side in this process, per batch size.

    Calls interleave (the order alternates each repeat), so a slow spell on a busy machine hits all
    variants alike. Returns rows ``{variant, batch, p50_ms, p99_ms, items_per_s}``, where
    ``items_per_s = batch / p50``; with few repeats p99 is close to the slowest call.
    """
    if not isinstance(variants, dict) or not variants:
        raise TypeError(f"variants must be a non-empty dict name -> callable, got {variants!r:.80}")
    not_callable = [name for name, fn in variants.items() if not callable(fn)]
    if not_callable:
        raise TypeError(f"variants {not_callable} are not callable")
    if not callable(make_inputs):
        raise TypeError(f"make_inputs must be a function batch_size -> tuple of inputs, got "
                        f"{type(make_inputs).__name__}")
    bad = [b for b in batch_sizes if isinstance(b, bool) or not isinstance(b, int) or b <= 0]
    if bad or not batch_sizes:
        raise ValueError(f"batch_sizes must be positive ints, got {tuple(batch_sizes)}")
    if not isinstance(repeats, int) or repeats < 2 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"need repeats >= 2 and warmup >= 0, got repeats={repeats!r}, warmup={warmup!r}")
    rows = []
    for batch in batch_sizes:
        inputs = make_inputs(batch)
        if _batch_size(inputs, f"make_inputs({batch})") != batch:
            raise ValueError(f"make_inputs({batch}) gave batch {inputs[0].shape[0]}, not {batch}")
        times: dict[str, list[float]] = {name: [] for name in variants}
        with torch.inference_mode():
            for _ in range(warmup):
                for fn in variants.values():
                    fn(*inputs)
            for i in range(repeats):
                order = list(variants) if i % 2 == 0 else list(reversed(variants))
                for name in order:
                    times[name].append(_time_call(variants[name], inputs))
        for name, seconds in times.items():
            p50 = statistics.median(seconds)
            rows.append({"variant": name, "batch": batch, "p50_ms": 1e3 * p50,
                         "p99_ms": 1e3 * float(np.percentile(seconds, 99)),
                         "items_per_s": batch / p50})
    return rows
