"""kernels.io_model: the byte counts of naive and tiled attention, checked against the lab's own loops
instrumented to count every tile they read and write, and Theorem 2's scaling.

Planted bugs caught: a formula that reads K and V once instead of once per query block (the non-causal
counts differ), the causal count ignoring skipped tiles (causal counts differ), lse counted in the input
dtype instead of float32 (bf16 counts differ), a naive count that forgets reading the scores back.
"""

import pytest
import torch

from attnflex_lab.kernels import flash, io_model


@pytest.mark.parametrize("T,S,D,Dv,block_q,block_k,causal", [
    (64, 64, 8, 8, 16, 16, False),
    (50, 37, 8, 6, 16, 8, False),      # ragged tiles
    (50, 37, 8, 6, 16, 8, True),       # causal T > S: some tiles skipped
    (24, 70, 4, 4, 8, 32, True),       # causal T < S
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tiled_count_matches_the_instrumented_loop(T, S, D, Dv, block_q, block_k, causal, dtype):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, n, w, generator=gen).to(dtype) for n, w in ((T, D), (S, D), (S, Dv)))
    io = io_model.IOCounter()
    flash.tiled_forward(q, k, v, None, causal, D ** -0.5, block_q, block_k, io=io)
    itemsize = torch.finfo(dtype).bits // 8
    assert io.traffic == io_model.tiled_forward_bytes(T, S, D, Dv, block_q=block_q, block_k=block_k, causal=causal,
                                                      batch=3, itemsize=itemsize)


def test_non_causal_formula_is_q_plus_kv_per_query_block():
    traffic = io_model.tiled_forward_bytes(100, 80, 16, block_q=32, block_k=16)
    assert traffic.read == 4 * (100 * 16 + 4 * 80 * (16 + 16))          # ⌈100 / 32⌉ = 4 passes over K and V
    assert traffic.write == 4 * (100 * 16 + 100)


def test_naive_count_matches_the_instrumented_algorithm_0():
    q, k, v = torch.randn(2, 30, 8), torch.randn(2, 40, 8), torch.randn(2, 40, 5)
    io = io_model.IOCounter()
    out = io_model.naive_attention_counted(q, k, v, io)
    torch.testing.assert_close(out, torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, -1) @ v)
    assert io.traffic == io_model.naive_bytes(30, 40, 8, 5, batch=2)


def test_theorem2_scaling_and_the_gap_to_naive():
    T = S = 4096
    D = 64
    ratios, gaps = [], []
    for sram in (4096, 8192, 16384):           # M elements, up to 4·D², where B_r = M / 4D rows still fit
        block_q, block_k = io_model.fa1_blocks(D, sram)
        tiled = io_model.tiled_forward_bytes(T, S, D, block_q=block_q, block_k=block_k).total / 4
        ratios.append(tiled / io_model.theorem2_elements(T, S, D, sram))
        gaps.append(io_model.naive_bytes(T, S, D).total / 4 / tiled)
    assert max(ratios) / min(ratios) < 1.5     # Θ(T·S·D²/M): the constant does not drift with M
    assert gaps[0] < 1 < 1.5 < gaps[2]         # a small SRAM re-reads K, V so often that tiling moves *more*
    assert gaps[0] < gaps[1] < gaps[2]         # more SRAM: fewer passes over K, V, a larger gap to naive


def test_flops_and_the_recompute_share():
    flops = io_model.attention_flops(128, 128, 64)
    assert flops["forward"] == 4 * 128 * 128 * 64
    assert flops["recompute"] / (flops["forward"] + flops["backward"]) == pytest.approx(1 / 6)
    causal = io_model.attention_flops(128, 128, 64, causal=True)
    assert causal["pairs"] == 128 * 129 // 2
    assert io_model.attention_flops(3, 5, 2, causal=True)["pairs"] == 3 + 4 + 5    # bottom-right: S − T = 2 extra


def test_roofline_is_the_slower_of_compute_and_memory():
    assert io_model.roofline_seconds(1e12, 1e9, peak_flops=1e12, bandwidth=1e12) == 1.0
    assert io_model.roofline_seconds(1e9, 2e12, peak_flops=1e12, bandwidth=1e12) == 2.0
