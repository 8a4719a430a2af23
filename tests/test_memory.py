"""memory.py: peak and saved bytes are exact on CPU. Planted bugs caught: counting views or in-place
results as new memory (the view test fails), never subtracting freed storages (the peak test fails)."""

import pytest
import torch

from attnflex_lab.kernels import memory

MIB = 2**20


def test_peak_counts_live_storages_once():
    def fn():
        a = torch.empty(MIB // 4)          # 1 MiB of float32
        b = a.view(2, -1).t()              # a view: no new memory
        b.add_(1.0)                        # in place: no new memory
        del a, b                           # freed before the next allocation
        c = torch.ones(MIB // 2)           # 2 MiB
        return c

    assert memory.peak_bytes(fn) == 2 * MIB


def test_peak_sees_both_when_both_are_alive():
    def fn():
        a = torch.empty(MIB // 4)
        b = torch.empty(MIB // 4)
        return a, b

    assert memory.peak_bytes(fn) == 2 * MIB


def test_saved_bytes_counts_each_storage_once():
    x = torch.randn(1000, requires_grad=True)
    # exp saves its output; mul saves both inputs (x and the exp output): 2 storages of 4000 bytes
    assert memory.saved_tensor_bytes(lambda: (x.exp() * x).sum()) == 2 * 4000


def test_measure_returns_all_three():
    x = torch.randn(100, 100, requires_grad=True)
    result = memory.measure(lambda: (x @ x).sum().backward(), repeats=2)
    assert result.seconds > 0 and result.peak_bytes >= 100 * 100 * 4 and result.saved_bytes == 100 * 100 * 4
    with pytest.raises(ValueError, match="repeats"):
        memory.time_call(lambda: None, repeats=0)
