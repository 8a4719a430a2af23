"""What only a CUDA GPU shows (issue 19 §2's device tier): run by ``make test-gpu``, skipped elsewhere.

Each test is the GPU half of a CPU test: resume (tests/test_engine_regressions.py stands in with
``meta``), the timer (a fake asynchronous device there), cached decoding (tests/test_one_forward.py),
the precision tier (tests/test_precision.py) under autocast.
"""

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from attnflex_lab.adapt import PrefixConfig, add_prefix
from attnflex_lab.kernels import kv_cache
from attnflex_lab.models.transformer import GPTConfig, TinyGPT
from attnflex_lab.perf import flops as perf
from attnflex_lab.training import TrainConfig, fit
from attnflex_lab.training.checkpoint import latest_checkpoint, rng_state, weights_sha256

pytestmark = pytest.mark.cuda


def _data(n=256):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=gen)                  # (N, 8)
    return TensorDataset(x, (x[:, 0] - x[:, 1] > 0).long())


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))  # dropout: GPU RNG


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def test_resume_on_cuda_reaches_the_uninterrupted_weights(tmp_path):
    """The checkpoint is loaded to the CPU and the GPU's dropout stream restored: the resumed run
    ends on the same weights, bit for bit, as the run that never stopped."""
    def cfg(steps, folder):
        return TrainConfig(steps=steps, batch_size=32, lr=1e-2, progress=False, device="cuda",
                           checkpoint_dir=str(folder), checkpoint_every=5)

    whole = _model()
    fit(whole, _data(), None, cfg(10, tmp_path / "whole"), loss_fn=_loss)
    resumed = _model()
    torch.manual_seed(123)                      # the resuming process's own RNG state must not matter
    torch.cuda.manual_seed(123)
    fit(resumed, _data(), None, cfg(10, tmp_path / "resumed"), loss_fn=_loss,
        resume=tmp_path / "whole" / "step_00000005.pt")
    assert weights_sha256(resumed) == weights_sha256(whole)
    assert len(torch.load(latest_checkpoint(tmp_path / "whole"), weights_only=True)["rng"]["cuda"]) == 1


def test_rng_state_keeps_the_current_gpu_only():
    state = rng_state()
    assert len(state["cuda"]) == 1
    torch.testing.assert_close(state["cuda"][0], torch.cuda.get_rng_state(torch.cuda.current_device()))


def test_the_timer_measures_the_work_not_the_launch():
    """A bf16 matmul of 2n³ FLOPs cannot run faster than the chip's peak: a timer that returns
    before the GPU is done (a launch is ~10 µs) would report an impossible speed."""
    n = 4096
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    seconds = min(perf.time_runs(lambda: a @ b, repeats=3, warmup=1))     # device=None: every GPU in use
    peak = perf.gpu_peak_flops(dtype=torch.bfloat16) or 2e15             # no known chip does 2 PFLOP/s dense
    assert seconds >= 2 * n**3 / peak, f"{seconds * 1e6:.1f} µs: faster than the peak, so not synchronised"


def test_cached_decoding_on_cuda_is_the_full_forward():
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(vocab_size=11, block_size=32, n_layers=2, n_heads=2, d_model=32))
    add_prefix(model, PrefixConfig(length=3, init_std=1.0))
    model = model.cuda().eval()
    idx = torch.randint(0, 11, (2, 12), device="cuda")
    cache = kv_cache.KVCache()
    steps = [model(idx[:, :4], past_kv=cache)] + [model(idx[:, t:t + 1], past_kv=cache) for t in range(4, 12)]
    torch.testing.assert_close(torch.cat(steps, dim=1), model(idx), rtol=1e-4, atol=1e-4)
    assert torch.equal(kv_cache.generate_greedy(model, idx[:, :4], 20),
                       kv_cache.generate_greedy(model, idx[:, :4], 20, use_cache=False))


def test_bf16_autocast_tiny_gpt_is_at_least_as_accurate_as_a_bf16_model():
    """Autocast keeps LayerNorm, softmax and the loss in fp32, so its logits must be no worse than
    the whole model cast to bf16 (the yardstick; K = 2 for run-to-run kernel choice), and a
    training step under it must give finite gradients."""
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(vocab_size=64, block_size=64, n_layers=2, n_heads=4, d_model=128)).cuda()
    idx = torch.randint(0, 64, (4, 64), device="cuda")
    exact = copy.deepcopy(model).double()(idx)

    def rel(x):
        return float((x.double() - exact).norm() / exact.norm())

    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(idx)
    bf16 = copy.deepcopy(model).to(torch.bfloat16)(idx)
    assert rel(logits) <= 2 * rel(bf16), (rel(logits), rel(bf16))
    loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), idx.roll(-1, 1).flatten())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
