"""perf: FLOPs per token, peaks, MFU, memory, timing; lesson 06 exercises."""

import pytest
import torch

from attnflex_lab import perf
from attnflex_lab.exercises import ExerciseError, check
from attnflex_lab.models.transformer import GPTConfig, TinyGPT


def test_flops_per_token_formula():
    assert perf.flops_per_token(1000, 2, 64, 128) == 6 * 1000 + 12 * 2 * 64 * 128
    # GPT-2 small (124M params, 12 layers, 768 wide, 1024 context): ~0.8 GFLOPs per token
    assert perf.flops_per_token(124_000_000, 12, 768, 1024) == pytest.approx(8.57e8, rel=1e-3)
    with pytest.raises(ValueError, match="n_layers"):
        perf.flops_per_token(1, -1, 1, 1)


def test_peak_table_lookup():
    assert perf.gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert perf.gpu_peak_flops("NVIDIA H200") == 989e12
    assert perf.gpu_peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert perf.gpu_peak_flops("NVIDIA L4") == 121e12
    assert perf.gpu_peak_flops("Tesla T4") == 65e12
    assert perf.gpu_peak_flops("Some Future GPU") is None


def test_mfu_and_report():
    assert perf.mfu(1000.0, 1e9, 1e13) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="positive"):
        perf.mfu(1.0, 1.0, 0.0)
    report = perf.throughput_report(tokens_per_step=1000, seconds_per_step=0.5,
                                    flops_per_tok=1e6, device="cpu")
    assert report["tokens_per_second"] == 2000.0
    assert report["peak_source"].startswith("measured")
    assert report["mfu"] == pytest.approx(2000.0 * 1e6 / (report["peak_tflops"] * 1e12))


def test_measured_cpu_peak_is_plausible():
    flops = perf.measure_matmul_flops(128, 3)
    assert 1e7 < flops < 1e13   # between 10 MFLOP/s and 10 TFLOP/s on any CPU


def test_count_params_and_memory():
    model = TinyGPT(GPTConfig(vocab_size=7, block_size=8, n_layers=1, n_heads=1, d_model=8))
    assert perf.count_params(model) == model.num_params()
    assert perf.count_params(model, non_embedding=True) == model.num_params() - 8 * 8
    with pytest.raises(ValueError, match="num_params"):
        perf.count_params(torch.nn.Linear(2, 2), non_embedding=True)
    assert perf.peak_memory_bytes("cpu") > 10 * 2**20   # a Python process with torch uses > 10 MiB


def test_time_steps_counts_calls():
    calls = []
    seconds = perf.time_steps(lambda: calls.append(1), 5, warmup=2)
    assert len(calls) == 7 and seconds >= 0
    with pytest.raises(ValueError, match="steps"):
        perf.time_steps(lambda: None, 0)


def test_lesson06_wrong_answers_are_explained():
    with pytest.raises(ExerciseError, match="expected"):
        check("06.flops_per_token", lambda n, L, d, T: 2.0 * n + 12.0 * L * d * T)
    with pytest.raises(ExerciseError, match="1e12"):
        check("06.mfu", lambda tps, fpt, peak: tps * fpt / peak)
