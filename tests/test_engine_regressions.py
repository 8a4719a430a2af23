"""Regressions of the engine's third pass (issue 19 §1): the bugs an fp32 CPU run does not show.

Where a GPU would be needed to see a bug, a stand-in shows it on the CPU: the ``meta`` device
(tensors without data, which, like CUDA tensors, cannot become numpy arrays or Python numbers),
or torch.cuda's functions replaced by fakes that record what was asked of them.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import TensorDataset

from attnflex_lab import positional
from attnflex_lab.analysis import interp
from attnflex_lab.kernels import memory
from attnflex_lab.models.encoder_decoder import EncoderDecoderConfig, TransformerSeq2Seq
from attnflex_lab.models.text_classifier import PooledTextClassifier, TextClassifierConfig
from attnflex_lab.perf import flops as perf
from attnflex_lab.serve import shipping
from attnflex_lab.training import LivePlot, TensorBoardLogger, TrainConfig, fit
from attnflex_lab.training import checkpoint as ckpt_module
from attnflex_lab.training import train as train_module
from attnflex_lab.training.callbacks import TrainState
from attnflex_lab.training.checkpoint import latest_checkpoint
from attnflex_lab.viz import sdpa as viz_sdpa
from tests.test_live_plot import FakeDisplay


def _data(n=64):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=gen)                   # (N, 4)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


# --- resume: the checkpoint is loaded to the CPU whatever the training device ---------------------

def test_resume_loads_the_checkpoint_to_the_cpu_when_training_elsewhere(tmp_path):
    """Planted bug (the old code): ``load_checkpoint(resume, map_location=device)``. On a GPU the
    numpy RNG keys then land on the GPU and ``.numpy()`` raises; here ``meta`` stands in for it."""
    torch.manual_seed(0)
    cfg = TrainConfig(steps=4, batch_size=16, lr=1e-2, progress=False, checkpoint_dir=str(tmp_path))
    fit(nn.Linear(4, 2), _data(), None, cfg, loss_fn=_loss)
    model = nn.Linear(4, 2)
    optimizer = train_module.build_optimizer(model, cfg, torch.device("cpu"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    state = TrainState(step=0, model=model, optimizer=optimizer, history=train_module.History(), cfg=cfg)
    train_module._restore(latest_checkpoint(tmp_path), state, scheduler, None, (), torch.device("meta"))
    assert state.step == 4
    saved = torch.load(latest_checkpoint(tmp_path), weights_only=True)
    torch.testing.assert_close(model.weight, saved["model"]["weight"], rtol=0, atol=0)


# --- DDP: a save asks for this rank's GPU generator only -------------------------------------------

def test_rng_state_asks_only_the_training_gpu(monkeypatch):
    """Planted bug (the old code): ``get_rng_state_all()`` at every save, which opens a CUDA context
    on every GPU in every rank. torch.cuda is replaced by fakes that record what was asked."""
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all",
                        lambda: asked.append("all") or [torch.zeros(2, dtype=torch.uint8)] * 4)
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device="cuda": asked.append(torch.device(device)) or torch.ones(2, dtype=torch.uint8))
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": restored.append(torch.device(device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append("all"))

    state = ckpt_module.rng_state()                       # DDP rank on cuda:1 (set_device made it current)
    assert asked == [torch.device("cuda", 1)] and len(state["cuda"]) == 1
    ckpt_module.rng_state(torch.device("cuda", 3))        # or the device fit trains on
    assert asked[-1] == torch.device("cuda", 3)
    ckpt_module.set_rng_state(state, torch.device("cuda", 2))
    assert restored == [torch.device("cuda", 2)]          # back onto the rank's own GPU, not GPU 0


def test_a_save_asks_for_the_generator_of_the_device_training_runs_on(monkeypatch, tmp_path):
    """Planted bug: save_training_checkpoint calling ``rng_state()`` without the device, so a single
    process training on cuda:3 (never made current) saved GPU 0's generator."""
    seen = []
    monkeypatch.setattr(ckpt_module, "rng_state",
                        lambda device=None: seen.append(device) or {"torch": torch.get_rng_state()})
    model = torch.nn.Linear(2, 2)
    state = TrainState(step=1, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                       history=train_module.History(), cfg=None)
    state.extra["early_stop"] = {}
    scheduler = torch.optim.lr_scheduler.LambdaLR(state.optimizer, lambda step: 1.0)
    ckpt_module.save_training_checkpoint(tmp_path, state, scheduler, None, (), config={"seed": 0},
                                         device=torch.device("cuda", 3))
    assert seen == [torch.device("cuda", 3)]


# --- rope in bf16 / fp16: fp32 trig, no float64 step -----------------------------------------------

# (rope's accuracy in bf16 and fp16 against its fp64 answer: tests/test_precision.py)


class _DtypesSeen(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.dtypes.add(t.dtype)
        return out


def test_rope_makes_no_float64_tensor_for_low_precision_input():
    """MPS has no float64: rope of a bf16, fp16 or fp32 input must not make one. Planted bug (the
    old code): ``inv_freq`` and the angle in float64."""
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        with _DtypesSeen() as seen:
            positional.rope(torch.randn(2, 8, 4).to(dtype))
        assert torch.float64 not in seen.dtypes, f"rope({dtype}) made float64 tensors"


# --- callbacks close what they opened when training crashes ---------------------------------------

def test_a_nan_loss_crash_still_closes_tensorboard_and_finishes_the_live_plot(tmp_path):
    """Planted bug (the old code): ``on_fit_end`` only after a successful run, so the crash left the
    TensorBoard writer open and the live plot's last figure undrawn."""
    pytest.importorskip("tensorboard")

    def nan_after_three_steps(model, batch):
        loss = _loss(model, batch)
        return loss * float("nan") if len(calls) >= 3 else loss

    calls = []
    board = TensorBoardLogger(tmp_path)
    display = FakeDisplay()
    plot = LivePlot(every=1, min_seconds=0.0, display=display, image=lambda png: png)

    class Count:
        def on_step_end(self, state):
            calls.append(state.step)

    torch.manual_seed(0)
    cfg = TrainConfig(steps=10, batch_size=16, lr=1e-2, progress=False)
    with pytest.raises(FloatingPointError, match="loss became nan"):
        fit(nn.Linear(4, 2), _data(), None, cfg, loss_fn=nan_after_three_steps,
            callbacks=[Count(), board, plot])
    assert board.writer is None, "the TensorBoard writer was left open"
    assert plot.curve.axes is None and plot.draws >= 1, "the live plot was not finished"
    assert not plot._active


# --- one timer, synchronised: it measures the work, not the launch --------------------------------

class _AsyncDevice:
    """A fake GPU: a call only queues ``seconds`` of work on a fake clock; synchronize runs it."""

    def __init__(self, monkeypatch, seconds=0.05):
        self.now, self.queued, self.seconds = 0.0, 0.0, seconds
        monkeypatch.setattr(perf.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "synchronize", self.synchronize)

    def launch(self, *args):
        self.now += 1e-5                # launching costs almost nothing
        self.queued += self.seconds     # the work runs later

    def synchronize(self, device=None):
        self.now += self.queued
        self.queued = 0.0


@pytest.mark.parametrize("timer", ["memory.time_call", "perf.time_steps", "shipping.latency_table"])
def test_every_timer_waits_for_the_device(monkeypatch, timer):
    """Planted bugs (the old code): ``memory.time_call`` without a device and ``shipping``'s timer
    never synchronised, so they measured 10 µs launches instead of 50 ms of work."""
    gpu = _AsyncDevice(monkeypatch)
    if timer == "memory.time_call":
        seconds = memory.time_call(gpu.launch, repeats=3)
    elif timer == "perf.time_steps":
        seconds = perf.time_steps(gpu.launch, 4, device="cuda")
    else:
        rows = shipping.latency_table({"model": gpu.launch}, lambda b: (torch.zeros(b, 2),),
                                      batch_sizes=(1,), repeats=3, warmup=1)
        seconds = rows[0]["p50_ms"] / 1e3
    assert seconds == pytest.approx(0.05 + 1e-5), f"{timer} measured {seconds:.2e} s per call"


# --- the SDPA sweep keeps an out-of-memory T instead of dropping the curve -------------------------

def test_sdpa_sweep_records_out_of_memory_instead_of_stopping_silently(monkeypatch):
    """Planted bug (the old code): ``except RuntimeError: break`` took CUDA's OOM for "no kernel
    here" and cut the curve without a word. A fake time_call runs out of memory at T = 64."""
    def time_call(run, *, repeats, warmup, device):
        if run.seq_len >= 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return 1e-3

    real_fwd_bwd = viz_sdpa._fwd_bwd

    def fwd_bwd(q, k, v, grad, causal):
        run = real_fwd_bwd(q, k, v, grad, causal)
        run.seq_len = q.shape[-2]
        return run

    monkeypatch.setattr(viz_sdpa, "time_call", time_call)
    monkeypatch.setattr(viz_sdpa, "_fwd_bwd", fwd_bwd)
    rows = viz_sdpa.sdpa_sweep([16, 32, 64, 128], heads=1, head_dim=8,
                               backends=[torch.nn.attention.SDPBackend.MATH], repeats=1)
    assert [(r.seq_len, r.out_of_memory) for r in rows] == [(16, False), (32, False), (64, True)]
    assert math.isnan(rows[-1].seconds)
    ax = viz_sdpa.plot_sdpa_sweep(rows, measure="forward + backward (ms)")
    assert "out of memory at T=64" in ax.get_legend().get_texts()[0].get_text()
    assert list(ax.lines[0].get_xdata()) == [16, 32]


def test_sdpa_sweep_raises_a_real_error(monkeypatch):
    """Only "No available kernel" means "not on this device"; any other error is a bug to show."""
    def broken(*args, **kwargs):
        raise RuntimeError("expected scalar type Float but found Half")

    monkeypatch.setattr(viz_sdpa, "time_call", broken)
    with pytest.raises(RuntimeError, match="scalar type"):
        viz_sdpa.sdpa_sweep([8], heads=1, head_dim=8, backends=[torch.nn.attention.SDPBackend.MATH])


# --- small ones ------------------------------------------------------------------------------------

def test_text_classifier_reads_nothing_back_in_a_training_step_off_the_cpu():
    """Planted bug (the old code): ``int(ids.max())`` in every forward, a host sync per training step
    on a GPU. On ``meta`` a read-back is impossible, so the forward fails if it tries."""
    model = PooledTextClassifier(TextClassifierConfig(vocab_size=30, d_model=8)).to("meta").train()
    logits, alpha = model(torch.randint(1, 30, (2, 5)).to("meta"))
    assert logits.shape == (2, 2) and alpha.shape == (2, 5)
    with pytest.raises(ValueError, match="vocabulary has 30"):  # the check still runs where it is free
        PooledTextClassifier(TextClassifierConfig(vocab_size=30, d_model=8))(torch.tensor([[31]]))


def test_attention_layers_does_not_mix_self_and_cross_attention():
    """Planted bug (the old code): an encoder–decoder's layers came back as one list, so "layer 2"
    could be a decoder's self-attention or its cross-attention depending on the depth."""
    model = TransformerSeq2Seq(EncoderDecoderConfig(d_model=16, n_heads=2))
    with pytest.raises(ValueError, match="kind='self' or kind='cross'"):
        interp.attention_layers(model)
    cross = interp.attention_layers(model, kind="cross")
    assert cross == [block.cross_attn for block in model.dec_blocks]
    assert all(not m.cross for m in interp.attention_layers(model, kind="self"))


# --- §5: Student-t intervals from scipy ----------------------------------------------------------------

def test_t_interval_uses_the_quantile_of_its_own_degrees_of_freedom():
    """Planted bug (the old code): a hand-typed table that stopped at 30 degrees of freedom, so 61
    values got df = 30's 2.042 instead of 2.000, and only 95 % intervals existed. Known answers:
    t_{0.975, 60} = 2.0003, t_{0.95, 4} = 2.1318 (any t table)."""
    from attnflex_lab.elasticity.metrics import mean_ci

    values = np.r_[np.zeros(30), np.ones(31)]                     # n = 61, s = 0.5040
    mean, half = mean_ci(values)
    assert half == pytest.approx(2.0003 * values.std(ddof=1) / math.sqrt(61), rel=1e-4)
    _, half90 = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0], confidence=0.90)
    assert half90 == pytest.approx(2.1318 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)
