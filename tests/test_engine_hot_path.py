"""The training hot path: no host syncs, GPT-2's residual init, honest throughput, spread eval windows."""

import math
import time

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import TensorDataset

from attnflex_lab import ops
from attnflex_lab.models.transformer import (
    EncoderConfig,
    GPTConfig,
    SequenceEncoder,
    TinyGPT,
    check_token_range,
)
from attnflex_lab.models.vit import TinyViT, ViTConfig
from attnflex_lab.recipes.lm import Throughput, lm_eval
from attnflex_lab.tasks.text import CharLMDataset
from attnflex_lab.training import TrainConfig, fit


class _HostReads(TorchDispatchMode):
    """Records every op that reads a tensor's value back to Python (a device sync on a GPU)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] in ("_local_scalar_dense", "is_nonzero", "item"):
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("make", [
    lambda: TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, d_model=16)),
    lambda: SequenceEncoder(EncoderConfig(vocab_size=11, max_len=8, d_model=16, n_heads=2)),
], ids=["TinyGPT", "SequenceEncoder"])
def test_a_training_forward_off_the_cpu_reads_nothing_back(make):
    """Planted bug: idx.min()/max() in every forward (two syncs per step, a graph break under
    torch.compile). On the meta device, reading a value back raises, so the forward must not."""
    model = make().to("meta").train()
    idx = torch.zeros(2, 8, dtype=torch.long, device="meta")
    assert model(idx).shape == (2, 8, 11 if isinstance(model, TinyGPT) else 12)
    model.eval()  # inference still checks the ids (and so must read them back)
    with pytest.raises(RuntimeError, match="meta"):
        model(idx)


def test_bad_token_ids_still_get_a_clear_error_where_they_are_checked():
    model = TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=16))
    with pytest.raises(ValueError, match=r"0\.\.10, got min 0 and max 11"):
        model(torch.tensor([[0, 11]]))  # CPU training mode: the check costs no device sync
    with pytest.raises(ValueError, match=r"0\.\.10, got min -1"):
        model.eval()(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match=r"0\.\.9, got min 0 and max 12"):
        check_token_range(torch.tensor([0, 12, 3]), 10)


def test_masked_ops_attention_never_reads_a_value_back():
    """Planted bug: ``if empty_row.any():`` in the masked softmax (a sync every call)."""
    q = torch.randn(2, 2, 4, 8, requires_grad=True)           # (B, H, T, D)
    mask = torch.ones(4, 4, dtype=torch.bool).tril()            # (T, S) causal
    with _HostReads() as reads:
        out, weights = ops.attention(q, q, q, mask)
        out.backward(torch.randn_like(out))
    assert reads.seen == []
    empty = mask.clone()
    empty[2] = False  # a fully masked row still gets zero weights, never NaN
    _, weights = ops.attention(q.detach(), q.detach(), q.detach(), empty)
    assert torch.equal(weights[..., 2, :], torch.zeros(2, 2, 4)) and not weights.isnan().any()


@pytest.mark.parametrize("make, blocks", [
    (lambda: TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layers=4, n_heads=4, d_model=96)), 4),
    (lambda: SequenceEncoder(EncoderConfig(vocab_size=11, max_len=8, d_model=96, n_layers=3)), 3),
    (lambda: TinyViT(ViTConfig(d_model=96, n_layers=2)), 2),
], ids=["TinyGPT", "SequenceEncoder", "TinyViT"])
def test_residual_projections_get_gpt2s_scaled_init(make, blocks):
    """Planted bug: every linear weight drawn with std 0.02, the residual projections included."""
    torch.manual_seed(0)
    model = make()
    scaled = 0.02 / math.sqrt(2 * blocks)
    for block in model.blocks:
        for proj in (block.attn.proj, block.mlp.down):
            assert proj.weight.std().item() == pytest.approx(scaled, rel=0.1)
        assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)  # others keep 0.02


def _tiny_run(tmp_path, eval_every, **cfg):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    model = nn.Linear(4, 2)

    def loss(m, batch):
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    def slow_eval(m, d):
        time.sleep(0.4)
        return {"accuracy": 0.5}

    meter = Throughput(block_size=1)
    config = TrainConfig(steps=3, batch_size=8, eval_every=eval_every, progress=False, **cfg)
    fit(model, data, data, config, loss_fn=loss, eval_fn=slow_eval, callbacks=[meter])
    return meter


def test_throughput_excludes_evaluation_and_checkpoint_time(tmp_path, monkeypatch):
    """Planted bug: tokens/s over the whole fit() wall time (3 evals of 0.4 s here)."""
    from attnflex_lab.training import loop

    real_save = loop.save_training_checkpoint

    def slow_save(*args, **kwargs):
        time.sleep(0.4)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(loop, "save_training_checkpoint", slow_save)
    meter = _tiny_run(tmp_path, eval_every=1, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    assert meter.steps == 3 and meter.tokens_per_step == 8
    assert 0 < meter.seconds < 0.4  # 3 evals and 3 checkpoints took 2.4 s: none of it counts
    assert meter.tokens_per_second == pytest.approx(24 / meter.seconds)


class _Spy(nn.Module):
    """Predicts nothing; remembers which windows it was shown."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.zeros(*x.shape, self.vocab)               # (b, T, V)


def test_lm_eval_spreads_its_windows_over_the_whole_split():
    """Planted bug: the first max_windows windows only (here: the first 64 of 1,250)."""
    tokens = torch.arange(10_008)                               # token i sits at position i
    data = CharLMDataset(tokens, block_size=8)                  # 10,000 windows, 1,250 disjoint
    spy = _Spy(vocab=10_008)
    lm_eval(spy, data, max_windows=64)
    starts = torch.cat(spy.seen)[:, 0]                          # (64,) each window's first position
    assert len(starts) == 64 and len(set(starts.tolist())) == 64
    assert (starts % 8 == 0).all()                              # non-overlapping windows
    assert starts.min() == 0 and starts.max() == 9_992          # from the first to the last one
    assert (starts.diff() > 8).all()                            # spread out, not side by side
