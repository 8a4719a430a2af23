"""fit(): schedule, clipping, early stopping, callbacks, history, batches, determinism."""

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from attnflex_lab.training import History, TrainConfig, evaluate, fit, lr_factor
from attnflex_lab.training.batches import batch_indices
from attnflex_lab.training.callbacks import RecordAttention
from attnflex_lab.training.checkpoint import weights_sha256


def _data(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _acc(model, data):
    x, y = data.tensors
    return {"accuracy": (model(x).argmax(-1) == y).float().mean().item()}


def _cfg(**kw):
    base = dict(steps=60, batch_size=32, lr=1e-2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_lr_schedule_warmup_then_cosine_to_floor():
    cfg = _cfg(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(factors[:9], factors[1:10], strict=True))  # warm-up rises
    assert all(a >= b for a, b in zip(factors[10:-1], factors[11:], strict=True))  # decay falls
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    mid = lr_factor(55, cfg)  # halfway through the decay: cosine at pi/2
    assert mid == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-9)


def test_fit_records_the_scheduled_lr_each_step():
    cfg = _cfg(steps=30, warmup_steps=5, min_lr_ratio=0.2)
    history = fit(_model(), _data(), None, cfg, loss_fn=_loss)
    lrs = [r["lr"] for r in history.steps]
    # the record of step s (1-based) holds the lr that step used: lr_factor of the 0-based step s - 1
    expected = [cfg.lr * lr_factor(s, cfg) for s in range(30)]
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(cfg.lr / 5)  # the first warm-up step, not the second


def test_grad_clipping_bounds_the_update():
    x = torch.randn(64, 6) * 100
    data = TensorDataset(x, torch.zeros(64, dtype=torch.long))
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    before = model.weight.detach().clone()
    cfg = _cfg(steps=1, batch_size=64, lr=0.5, grad_clip=1e-3, weight_decay=0.0)
    history = fit(model, data, None, cfg, loss_fn=_loss)
    assert history.steps[0]["grad_norm"] > 1e-3  # the raw norm was larger than the cap
    # Adam's first step moves each weight by ~lr whatever the gradient scale, so the update cannot
    # show the clipping; the gradients fit left behind (clip_grad_norm_ rescales them in place) can.
    opt_grad_norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert opt_grad_norm <= 1e-3 * (1 + 1e-4)
    assert not torch.equal(before, model.weight)


def test_early_stopping_stops_after_patience_evals_without_improvement():
    seen = []

    def flat_metric(model, data):
        seen.append(1)
        return {"accuracy": 0.5}  # never improves after the first eval

    cfg = _cfg(steps=1000, eval_every=5, patience=3)
    history = fit(_model(), _data(), _data(64, seed=1), cfg, loss_fn=_loss, eval_fn=flat_metric)
    assert history.stopped_early
    assert len(history.evals) == 4 and history.evals[-1]["step"] == 20
    assert history.best_step == 5 and history.best_metric == 0.5
    assert history.steps[-1]["step"] == 20


def test_loss_metric_is_minimised_and_named_metric_is_used():
    cfg = _cfg(steps=40, eval_every=10, metric="val_loss")
    history = fit(_model(), _data(), _data(64, seed=1), cfg, loss_fn=_loss)
    assert history.metric == "val_loss"
    losses = [e["val_loss"] for e in history.evals]
    assert history.best_metric == min(losses)
    with pytest.raises(KeyError, match="not among the eval metrics"):
        fit(_model(), _data(), _data(64, seed=1), _cfg(steps=5, metric="nope"), loss_fn=_loss,
            eval_fn=_acc)


def test_callbacks_are_called_in_order_with_state():
    calls = []

    class Spy:
        def on_fit_start(self, state):
            calls.append(("start", state.step))

        def on_step_end(self, state):
            calls.append(("step", state.step, state.loss is not None))

        def on_eval(self, state, metrics):
            calls.append(("eval", state.step, sorted(metrics)))

        def on_fit_end(self, state):
            calls.append(("end", state.step))

    fit(_model(), _data(), _data(64, seed=1), _cfg(steps=6, eval_every=3), loss_fn=_loss,
        eval_fn=_acc, callbacks=[Spy()])
    assert calls[0] == ("start", 0) and calls[-1] == ("end", 6)
    assert [c[1] for c in calls if c[0] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [c[1] for c in calls if c[0] == "eval"] == [3, 6]
    assert ("eval", 3, ["accuracy"]) in calls and calls.index(("eval", 3, ["accuracy"])) == 4


def test_a_callback_can_stop_training():
    class StopAt:
        def on_step_end(self, state):
            state.stop = state.step >= 7

    history = fit(_model(), _data(), None, _cfg(steps=100), loss_fn=_loss, callbacks=[StopAt()])
    assert history.steps[-1]["step"] == 7


def test_history_is_serialisable_and_round_trips():
    history = fit(_model(), _data(), _data(64, seed=1), _cfg(steps=20, eval_every=10),
                  loss_fn=_loss, eval_fn=_acc)
    data = history.to_dict()
    import json

    again = History.from_dict(json.loads(json.dumps(data)))
    assert again == history
    assert len(history.steps) == 20 and [e["step"] for e in history.evals] == [10, 20]
    steps, values = history.values("accuracy", "evals")
    assert steps == [10, 20] and all(0 <= v <= 1 for v in values)
    assert history.final_loss == history.steps[-1]["loss"] and history.seconds > 0


def test_loss_extras_are_recorded():
    def loss_with_extras(model, batch):
        loss = _loss(model, batch)
        return loss, {"half": loss.detach() / 2}

    history = fit(_model(), _data(), None, _cfg(steps=3), loss_fn=loss_with_extras)
    assert all(r["half"] == pytest.approx(r["loss"] / 2) for r in history.steps)


def test_same_seed_same_weights_and_the_model_learns():
    cfg = _cfg(steps=80)
    a, b = _model(), _model()
    fit(a, _data(), None, cfg, loss_fn=_loss)
    fit(b, _data(), None, cfg, loss_fn=_loss)
    assert weights_sha256(a) == weights_sha256(b)
    c = _model()
    fit(c, _data(), None, dataclasses.replace(cfg, seed=1), loss_fn=_loss)
    assert weights_sha256(a) != weights_sha256(c)
    assert _acc(a.eval(), _data(512, seed=3))["accuracy"] > 0.9


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    n, bs = 50, 16
    stream = torch.cat([batch_indices(n, bs, s, seed=3) for s in range(25)])  # 400 = 8 epochs
    for epoch in range(8):
        assert sorted(stream[epoch * n:(epoch + 1) * n].tolist()) == list(range(n))
    assert torch.equal(batch_indices(n, bs, 7, seed=3), stream[7 * bs:8 * bs])
    assert not torch.equal(batch_indices(n, bs, 0, seed=3), batch_indices(n, bs, 0, seed=4))


def test_record_attention_records_every_n_steps_without_changing_the_run():
    probe = torch.randn(4, 6)

    def weights(model):
        torch.rand(10)  # consumes RNG: must not disturb training
        return model[0](probe).softmax(-1)

    rec = RecordAttention(every=5, fn=weights)
    plain, recorded = _model(), _model()
    fit(plain, _data(), None, _cfg(steps=20), loss_fn=_loss)
    fit(recorded, _data(), None, _cfg(steps=20), loss_fn=_loss, callbacks=[rec])
    assert rec.steps == [0, 5, 10, 15, 20]
    assert rec.weights[0].shape == (4, 16) and not rec.weights[0].requires_grad
    assert not torch.equal(rec.weights[0], rec.weights[-1])
    assert weights_sha256(plain) == weights_sha256(recorded)
    with pytest.raises(ValueError, match="positive int"):
        RecordAttention(every=0, fn=weights)


def test_evaluate_restores_train_mode_and_defaults_to_val_loss():
    model = _model().train()
    metrics = evaluate(model, _data(64), loss_fn=_loss)
    assert set(metrics) == {"val_loss"} and math.isfinite(metrics["val_loss"])
    assert model.training
    with pytest.raises(TypeError, match="non-empty dict"):
        evaluate(model, _data(64), lambda m, d: 0.5)


def test_bad_config_and_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="steps must be a positive int"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="amp_dtype"):
        TrainConfig(amp_dtype="fp8")
    with pytest.raises(TypeError, match="TrainConfig"):
        fit(_model(), _data(), None, {"steps": 3}, loss_fn=_loss)
    with pytest.raises(ValueError, match="scalar loss"):
        fit(_model(), _data(), None, _cfg(steps=2),
            loss_fn=lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1], reduction="none"))
    with pytest.raises(FloatingPointError, match="step 1"):
        fit(_model(), _data(), None, _cfg(steps=2),
            loss_fn=lambda m, b: _loss(m, b) * float("nan"))


def test_bf16_autocast_runs_on_cpu():
    history = fit(_model(), _data(), None, _cfg(steps=5, amp_dtype="bf16"), loss_fn=_loss)
    assert len(history.steps) == 5 and all(math.isfinite(r["loss"]) for r in history.steps)


def test_progress_bar_goes_to_stderr_only(capsys):
    fit(_model(), _data(), None, _cfg(steps=5, progress=True), loss_fn=_loss)
    out, err = capsys.readouterr()
    assert out == "" and "5/5" in err


class _FakeCompilerError(torch._dynamo.exc.TorchDynamoException):
    """Stands in for what Dynamo or Inductor raise when compiling fails."""


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    class Broken(nn.Module):
        def forward(self, *args):
            torch.rand(5)  # a half-run compiled step may have drawn random numbers already
            raise _FakeCompilerError("backend compiler failed")

    monkeypatch.setattr(torch, "compile", lambda model: Broken())
    eager, fallback = _model(), _model()
    fit(eager, _data(), None, _cfg(steps=10), loss_fn=_loss)
    with pytest.warns(UserWarning, match="torch.compile failed here .*training without it"):
        fit(fallback, _data(), None, _cfg(steps=10, compile=True), loss_fn=_loss)
    assert weights_sha256(eager) == weights_sha256(fallback)


def test_batch_size_must_divide_by_the_world_size(monkeypatch):
    from attnflex_lab.training import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match="batch_size=32 must divide by the world size 3"):
        fit(_model(), _data(), None, _cfg(steps=2), loss_fn=_loss)


def test_rank_slices_partition_the_global_batch():
    """Each DDP rank trains on its own quarter of the batch: disjoint shares that together are the batch
    (the DDP equality test alone would not notice every rank training on the whole batch)."""
    from attnflex_lab.training.batches import batch_indices, rank_slice

    idx = batch_indices(n=50, batch_size=16, step=7, seed=3)
    shares = [rank_slice(idx, r, 4) for r in range(4)]
    assert all(len(s) == 4 for s in shares)
    assert torch.equal(torch.cat(shares), idx)
    assert len(set(torch.cat(shares).tolist())) == 16
    with pytest.raises(ValueError, match="does not split evenly over 3 ranks"):
        rank_slice(idx, 0, 3)


def test_a_bug_in_the_loss_under_compile_propagates_unchanged(monkeypatch):
    """Planted bug: the old fallback caught every exception, warned "torch.compile failed", and ran
    the step again (a second forward; a second optimizer step had the error come after it)."""
    import warnings

    monkeypatch.setattr(torch, "compile", lambda model: model)  # compiling "works"
    bug, calls = KeyError("the loss looked up a missing key"), []

    def buggy_loss(model, batch):
        calls.append(1)
        _loss(model, batch)
        raise bug

    model = _model()
    before = weights_sha256(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "torch.compile failed" warning would fail here
        with pytest.raises(KeyError) as err:
            fit(model, _data(), None, _cfg(steps=3, compile=True), loss_fn=buggy_loss)
    assert err.value is bug and len(calls) == 1
    assert weights_sha256(model) == before  # no optimizer step ran


def test_only_compiler_errors_count_as_compile_failures():
    from attnflex_lab.training.loop import is_compiler_error

    assert is_compiler_error(_FakeCompilerError("x"))
    assert is_compiler_error(torch._dynamo.exc.Unsupported("data-dependent branch"))
    assert not is_compiler_error(RuntimeError("CUDA out of memory"))
    assert not is_compiler_error(torch._dynamo.exc.TorchRuntimeError("shape mismatch in the model"))


def test_extras_become_floats_only_on_logged_steps():
    """Planted bug: split_loss called float() on every extra every step (a device sync each)."""
    conversions = []

    class Counted:
        def __float__(self):
            conversions.append(1)
            return 1.5

    def loss_with_extras(model, batch):
        return _loss(model, batch), {"x": Counted()}

    history = fit(_model(), _data(), None, _cfg(steps=12, log_every=4), loss_fn=loss_with_extras)
    assert [r["step"] for r in history.steps] == [4, 8, 12]
    assert [r["x"] for r in history.steps] == [1.5, 1.5, 1.5]
    assert len(conversions) == 3


def test_weight_decay_skips_biases_norms_and_embeddings():
    """Planted bug: one AdamW group decaying every parameter."""
    from attnflex_lab.models.transformer import GPTConfig, TinyGPT

    torch.manual_seed(0)
    gpt = TinyGPT(GPTConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=8))
    seen = {}

    class Grab:
        def on_fit_start(self, state):
            seen["groups"] = state.optimizer.param_groups

    x = torch.randint(0, 11, (16, 8))
    data = TensorDataset(x, x)

    def lm(model, batch):
        return nn.functional.cross_entropy(model(batch[0]).flatten(0, 1), batch[1].flatten())

    fit(gpt, data, None, _cfg(steps=1, batch_size=4, weight_decay=0.1), loss_fn=lm, callbacks=[Grab()])
    names = {id(p): n for n, p in gpt.named_parameters()}
    decayed = {names[id(p)] for g in seen["groups"] if g["weight_decay"] == 0.1 for p in g["params"]}
    not_decayed = {names[id(p)] for g in seen["groups"] if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decayed == {"blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight",
                       "blocks.0.mlp.up.weight", "blocks.0.mlp.down.weight"}
    assert {"tok_emb.weight", "pos.weight", "ln_f.weight", "blocks.0.ln1.bias",
            "blocks.0.attn.qkv.bias"} <= not_decayed
    assert len(decayed) + len(not_decayed) == len(list(gpt.parameters()))  # the tied head once


def test_fused_adamw_only_with_every_parameter_on_cuda():
    from attnflex_lab.training.optim import use_fused

    model = _model()
    assert not use_fused(model, torch.device("cpu"))
    assert not use_fused(model, torch.device("cuda"))  # the parameters still live on the CPU
    if torch.cuda.is_available():
        assert use_fused(model.cuda(), torch.device("cuda"))
        mixed = nn.Sequential(nn.Linear(2, 2).cuda(), nn.Linear(2, 2))  # one layer left on the CPU
        assert not use_fused(mixed, torch.device("cuda"))


def test_each_rank_seeds_its_own_rng_but_rank_0_keeps_the_seed(monkeypatch):
    """Planted bug: every DDP rank seeded with cfg.seed, so all ranks drew the same dropout masks."""
    from attnflex_lab.training import distributed, train

    assert distributed.rank_seed(7, 0) == 7  # one process trains exactly as before
    seeds = {distributed.rank_seed(7, r) for r in range(4)}
    assert len(seeds) == 4 and all(s >= 0 for s in seeds)
    assert distributed.rank_seed(7, 1) == distributed.rank_seed(7, 1)  # reproducible

    seeded = []

    class Seeded(Exception):
        pass

    def record(seed):
        seeded.append(seed)
        raise Seeded  # stop fit here: rank 1 of a real group needs DDP beyond this point

    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(train, "seed_everything", record)
    with pytest.raises(Seeded):
        fit(_model(), _data(), None, _cfg(steps=2), loss_fn=_loss)
    assert seeded == [distributed.rank_seed(0, 1)] and seeded[0] != 0
