"""perf: FLOPs per token, peaks, MFU, memory, timing; lesson 06 exercises."""


import pytest
import torch

from attnflex_lab.exercises import ExerciseError, check
from attnflex_lab.models.transformer import GPTConfig, TinyGPT
from attnflex_lab.perf import flops as perf


def test_flops_per_token_formula():
    assert perf.flops_per_token(1000, 2, 64, 128) == 6 * 1000 + 12 * 2 * 64 * 128
    # GPT-2 small (124M params, 12 layers, 768 wide, 1024 context): ~0.8 GFLOPs per token
    assert perf.flops_per_token(124_000_000, 12, 768, 1024) == pytest.approx(8.57e8, rel=1e-3)
    with pytest.raises(ValueError, match="n_layers"):
        perf.flops_per_token(1, -1, 1, 1)


# Names as torch.cuda.get_device_name() reports them -> dense bf16 TFLOP/s from the data sheets.
DATASHEET_BF16 = {
    "NVIDIA H100 80GB HBM3": 989.5,     # SXM5: 1,979 with sparsity
    "NVIDIA H100 PCIe": 756.5,          # 1,513 with sparsity: not the SXM part
    "NVIDIA H100 NVL": 835.5,
    "NVIDIA H200": 989.5,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-PCIE-40GB": 312.0,
    "NVIDIA L4": 121.0,
    "NVIDIA L40S": 362.05,              # "l4" is a substring of "l40s": must not get the L4's 121
    "NVIDIA A10": 125.0,
    "NVIDIA GeForce RTX 4090": 165.2,
}


@pytest.mark.parametrize("name,tflops", DATASHEET_BF16.items())
def test_peak_table_matches_whole_sku_names(name, tflops):
    assert perf.gpu_peak_flops(name) == pytest.approx(tflops * 1e12)
    assert perf.gpu_peak_flops(name, torch.bfloat16) == pytest.approx(tflops * 1e12)


@pytest.mark.parametrize("name", ["Some Future GPU", "NVIDIA A10G", "NVIDIA GeForce RTX 4090 D", "NVIDIA L",
                                  "NVIDIA H1000", "", "NVIDIA B200"])
def test_unknown_or_unlisted_names_have_no_peak(name):
    """Substring matching gave the A10's numbers to the A10G and the 4090's to the slower 4090 D."""
    assert perf.gpu_peak_flops(name) is None
    assert perf.gpu_peak_flops(name, torch.float32) is None


def test_peak_depends_on_the_dtype():
    h100 = "NVIDIA H100 80GB HBM3"
    assert perf.gpu_peak_flops(h100, torch.float16) == pytest.approx(989.5e12)
    assert perf.gpu_peak_flops(h100, torch.float32, tf32=False) == pytest.approx(67e12)
    assert perf.gpu_peak_flops(h100, torch.float32, tf32=True) == pytest.approx(494.5e12)
    # the T4 (Turing) has fp16 tensor cores but no bf16 and no TF32: fp32 stays fp32 with TF32 on
    assert perf.gpu_peak_flops("Tesla T4", torch.float16) == pytest.approx(65e12)
    assert perf.gpu_peak_flops("Tesla T4", torch.bfloat16) is None
    assert perf.gpu_peak_flops("Tesla T4", torch.float32, tf32=True) == pytest.approx(8.1e12)
    for sku in perf.GPU_PEAK_TFLOPS:
        peaks = perf.GPU_PEAK_TFLOPS[sku]
        assert peaks["fp32"] < peaks["fp16"], sku
        assert peaks["bf16"] is None or peaks["fp32"] < peaks["bf16"], sku
        assert peaks["tf32"] is None or peaks["fp32"] <= peaks["tf32"] < peaks["fp16"], sku


def test_fp32_peak_follows_the_global_tf32_switch(monkeypatch):
    monkeypatch.setattr(perf, "tf32_matmul_enabled", lambda: True)
    assert perf.gpu_peak_flops("NVIDIA A100-SXM4-40GB", torch.float32) == pytest.approx(156e12)
    monkeypatch.setattr(perf, "tf32_matmul_enabled", lambda: False)
    assert perf.gpu_peak_flops("NVIDIA A100-SXM4-40GB", torch.float32) == pytest.approx(19.5e12)


def test_tf32_switch_is_read_from_torch():
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")      # allows TF32
        assert perf.tf32_matmul_enabled()
        assert perf.gpu_peak_flops("NVIDIA L40S", torch.float32) == pytest.approx(183e12)
        torch.set_float32_matmul_precision("highest")   # IEEE fp32
        assert not perf.tf32_matmul_enabled()
        assert perf.gpu_peak_flops("NVIDIA L40S", torch.float32) == pytest.approx(91.6e12)
    finally:
        torch.set_float32_matmul_precision(before)


def test_every_listed_name_form_reaches_a_sku():
    forms = {"Tesla V100-SXM2-16GB": "V100 SXM2", "Tesla V100-PCIE-32GB": "V100 PCIe",
             "NVIDIA A100 80GB PCIe": "A100", "NVIDIA H200 NVL": "H200 NVL", "NVIDIA GH200 480GB": "GH200",
             "NVIDIA L40": "L40", "NVIDIA A40": "A40", "NVIDIA GeForce RTX 3090": "RTX 3090"}
    for name, sku in forms.items():
        assert perf.gpu_sku(name) == sku, name


def test_peak_rejects_bad_dtypes():
    with pytest.raises(ValueError, match="torch.float64"):
        perf.gpu_peak_flops("NVIDIA L4", torch.float64)
    with pytest.raises(TypeError, match="torch.dtype"):
        perf.gpu_peak_flops("NVIDIA L4", "bf16")
    with pytest.raises(TypeError, match="str"):
        perf.gpu_peak_flops(4090)


def _pretend_cuda(monkeypatch, name):
    """peak_flops on a "cuda" device reads only the device name: enough to test it without a GPU."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(perf, "tf32_matmul_enabled", lambda: False)


def test_mfu_and_report_against_a_hand_computed_value(monkeypatch):
    assert perf.mfu(1000.0, 1e9, 1e13) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="positive"):
        perf.mfu(1.0, 1.0, 0.0)
    _pretend_cuda(monkeypatch, "NVIDIA H100 PCIe")
    # 4096 tokens every 0.25 s at 3e9 FLOPs per token = 4.9152e13 FLOP/s
    report = perf.throughput_report(tokens_per_step=4096, seconds_per_step=0.25, flops_per_tok=3e9,
                                    device="cuda")
    assert report["tokens_per_second"] == pytest.approx(16384.0)
    assert report["achieved_tflops"] == pytest.approx(49.152)
    assert report["mfu"] == pytest.approx(49.152 / 756.5)   # bf16 by default on a GPU
    assert "dense bf16" in report["peak_source"]
    fp32 = perf.throughput_report(tokens_per_step=4096, seconds_per_step=0.25, flops_per_tok=3e9,
                                  device="cuda", dtype=torch.float32)
    assert fp32["mfu"] == pytest.approx(49.152 / 51.0)
    with pytest.raises(ValueError, match="seconds_per_step"):
        perf.throughput_report(tokens_per_step=1, seconds_per_step=0.0, flops_per_tok=1.0, device="cpu")


def test_cpu_peak_is_measured_in_the_dtype_asked_for(monkeypatch):
    measured = []
    monkeypatch.setattr(perf, "measure_matmul_flops",
                        lambda n, repeats, *, device, dtype: measured.append(dtype) or 2e11)
    peak, source = perf.peak_flops("cpu")                     # old calls: fp32 on a CPU
    assert peak == 2e11 and source == "measured fp32 matmul (cpu)"
    assert perf.peak_flops("cpu", torch.bfloat16)[1] == "measured bf16 matmul (cpu)"
    assert measured == [torch.float32, torch.bfloat16]
    report = perf.throughput_report(tokens_per_step=1000, seconds_per_step=0.5, flops_per_tok=1e6,
                                    device="cpu", dtype=torch.bfloat16)
    assert report["mfu"] == pytest.approx(2000 * 1e6 / 2e11)
    assert measured[-1] == torch.bfloat16


def test_measured_matmul_flops_is_2n_cubed_over_the_best_time(monkeypatch):
    """A fake clock ticking 0.5 ms per read makes every timed matmul last 0.5 ms: 2·n³ / 5e-4."""
    ticks = iter(range(10_000))
    monkeypatch.setattr(perf.time, "perf_counter", lambda: next(ticks) * 5e-4)
    assert perf.measure_matmul_flops(64, 3) == pytest.approx(2 * 64**3 / 5e-4)


def _tiny_gpt(bias=False):
    return TinyGPT(GPTConfig(vocab_size=7, block_size=8, n_layers=1, n_heads=1, d_model=8, bias=bias,
                             backend="functional"))


def test_count_params_from_the_architecture():
    V, T, C = 7, 8, 8
    # token table (tied with the output layer), position table, qkv 3C², proj C², MLP 8C², biases
    # 3C + C + 4C + C, two LayerNorms in the block and one at the end (weight + bias each).
    per_block = 12 * C * C + 9 * C + 2 * 2 * C
    assert perf.count_params(_tiny_gpt(bias=True)) == V * C + T * C + per_block + 2 * C
    assert perf.count_params(_tiny_gpt(bias=True), non_embedding=True) == V * C + per_block + 2 * C
    assert perf.count_params(_tiny_gpt(bias=False)) == V * C + T * C + 12 * C * C + 3 * C
    with pytest.raises(ValueError, match="num_params"):
        perf.count_params(torch.nn.Linear(2, 2), non_embedding=True)
    assert perf.peak_memory_bytes("cpu") > 10 * 2**20   # a Python process with torch uses > 10 MiB


def test_flops_per_token_matches_a_counted_training_step():
    """Count the matmul FLOPs of one real forward + backward (torch's FlopCounterMode) and compare.

    Without biases every weight but the LayerNorm gains and the position table sits in a matmul, so
    6·N_matmul + 12·L·C·T is exact (causal attention still multiplies the full T×T scores).
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = _tiny_gpt(bias=False)
    B, T, C, L = 2, 8, 8, 1
    n_matmul = 7 * C + 12 * C * C                      # tied token table/lm_head + qkv + proj + MLP
    idx = torch.randint(0, 7, (B, T))
    with FlopCounterMode(display=False) as counter:
        logits = model(idx)
        (logits * torch.randn_like(logits)).sum().backward()
    counted = counter.get_total_flops() / (B * T)
    assert counted == perf.flops_per_token(n_matmul, L, C, T) == 6 * 824 + 12 * 1 * 8 * 8  # = 5712
    # the lesson's N (all parameters) adds 6 FLOPs per LayerNorm gain and position entry on top
    n_all = perf.count_params(model)
    assert perf.flops_per_token(n_all, L, C, T) - counted == 6 * (n_all - n_matmul)


def test_time_steps_is_the_mean_of_the_timed_calls_only(monkeypatch):
    """A fake clock: each warm-up call "takes" 0.2 s and each of 5 timed calls 0.02 s.

    Planted bugs caught: the total instead of the mean (0.1 s), warm-up inside the timer (0.1 s),
    dividing by steps + warmup (0.071 s)."""
    clock = {"now": 0.0}
    monkeypatch.setattr(perf.time, "perf_counter", lambda: clock["now"])
    calls = []

    def step():
        calls.append(1)
        clock["now"] += 0.2 if len(calls) <= 2 else 0.02

    seconds = perf.time_steps(step, 5, warmup=2)
    assert len(calls) == 7
    assert seconds == pytest.approx(0.02)
    with pytest.raises(ValueError, match="steps"):
        perf.time_steps(lambda: None, 0)


def test_lesson06_wrong_answers_are_explained():
    with pytest.raises(ExerciseError, match="expected"):
        check("06.flops_per_token", lambda n, L, d, T: 2.0 * n + 12.0 * L * d * T)
    with pytest.raises(ExerciseError, match="1e12"):
        check("06.mfu", lambda tps, fpt, peak: tps * fpt / peak)
