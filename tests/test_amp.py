"""attnflex_lab.perf.amp: loss curves per precision, fp16 underflow counts, the GradScaler's back-off.

Planted bugs each test caught: autocast dropped from train_curve (bf16 equal to fp32 bit for bit);
underflow counted as |g| < 6e-8 instead of by casting (4e-8 rounds up to fp16's 2^-24, not to 0);
``skipped`` always False (the back-off steps would be counted as taken).
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnflex_lab.perf import amp


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 4))
    w = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))

    def batch_at(step):
        x = torch.randn(32, 16, generator=torch.Generator().manual_seed(100 + step))
        return x, (x @ w).argmax(-1)

    return model, batch_at


def _loss(logits, y):
    return F.cross_entropy(logits.float(), y)


def _curve(dtype=None, scaler=None, steps=60):
    model, batch_at = _setup()
    return amp.train_curve(model, batch_at, _loss, steps=steps, amp_dtype=dtype, scaler=scaler, lr=3e-3)


def test_fp32_curve_is_the_plain_loop():
    curve = _curve()
    model, batch_at = _setup()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    expected = []
    for step in range(60):
        loss = _loss(model(batch_at(step)[0]), batch_at(step)[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
        expected.append(loss.item())
    assert curve.losses == expected and curve.precision == "fp32" and curve.scales == []


def test_low_precision_curves_really_differ_but_agree_within_tolerance():
    fp32 = _curve()
    bf16 = _curve(torch.bfloat16)
    fp16 = _curve(torch.float16, torch.amp.GradScaler("cpu"))
    assert fp32.losses[0] - fp32.losses[-1] > 0.3                  # it learns, so agreement means something
    for low in (bf16, fp16):
        assert low.losses != fp32.losses                           # autocast really ran in 16 bits
        gap = (amp.smoothed(low.losses, 10) - amp.smoothed(fp32.losses, 10)).abs().max().item()
        assert gap < 0.05, (low.precision, gap)
    assert fp16.precision == "fp16 + scaler" and len(fp16.scales) == 60 and not any(fp16.skipped)


def test_scaler_only_with_fp16():
    model, batch_at = _setup()
    with pytest.raises(ValueError, match="GradScaler is for fp16"):
        amp.train_curve(model, batch_at, _loss, steps=1, amp_dtype=torch.bfloat16,
                        scaler=torch.amp.GradScaler("cpu"))


def test_fp16_underflow_counts_what_the_cast_flushes():
    grads = [torch.tensor([1e-9, 1e-3, 0.0]), torch.tensor([[2e-8, 4e-8], [-1e-9, 5.0]])]
    plain = amp.fp16_underflow(grads)
    assert (plain.nonzero, plain.zeroed) == (6, 3)                 # 1e-9, 2e-8, -1e-9; 4e-8 -> 2^-24
    assert plain.smallest == pytest.approx(1e-9) and plain.fraction == pytest.approx(0.5)
    assert amp.fp16_underflow(grads, scale=2.0**16).zeroed == 0    # scaled up, all of them survive


def test_scaler_backs_off_by_halving_and_skips_those_steps():
    model, batch_at = _setup()
    start = 2.0**40                                              # far above fp16's 65504: overflows
    curve = amp.scaler_backoff(model, batch_at, _loss, steps=40, init_scale=start)
    before = [start] + curve.scales[:-1]
    for prev, now, skipped in zip(before, curve.scales, curve.skipped, strict=True):
        assert now == (prev / 2 if skipped else prev)
    assert curve.skipped[0] and not curve.skipped[-1]            # backed off, then trained
    assert 2.0 ** sum(curve.skipped) == start / curve.scales[-1]  # one halving per skipped step


def test_smoothed_is_a_trailing_mean():
    values = [4.0, 2.0, 6.0, 0.0, 1.0]
    expected = [sum(values[max(0, i - 1):i + 1]) / len(values[max(0, i - 1):i + 1]) for i in range(5)]
    torch.testing.assert_close(amp.smoothed(values, 2), torch.tensor(expected, dtype=torch.float64))
