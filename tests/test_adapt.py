"""attnflex_lab.adapt: each method starts as the base model, LoRA merges exactly, freezing holds."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnflex_lab import adapt, functional
from attnflex_lab.adapt.transfer import attention_maps
from attnflex_lab.models.transformer import EncoderConfig, SequenceEncoder
from attnflex_lab.modules import BACKENDS, DecoderBlock, MultiHeadAttention, padding_mask
from attnflex_lab.training import TrainConfig
from attnflex_lab.training.optim import build_optimizer

C, H, T = 16, 4, 6


def _encoder(seed=0, backend="functional"):
    torch.manual_seed(seed)
    return SequenceEncoder(EncoderConfig(vocab_size=10, n_classes=10, max_len=T, d_model=C, n_heads=H,
                                         backend=backend)).double()


def _tokens(seed=1, n=5):
    return torch.randint(0, 10, (n, T), generator=torch.Generator().manual_seed(seed))


def _randomise(params, seed=2):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))


# --- LoRA ------------------------------------------------------------------------------------------

def test_lora_with_b_zero_is_the_base_model():
    model, x = _encoder(), _tokens()
    before = model(x)
    adapt.add_lora(model, adapt.LoRAConfig(rank=2))
    assert torch.equal(model(x), before)


def test_lora_changes_only_the_target_slices_by_the_low_rank_update():
    torch.manual_seed(0)
    mha = MultiHeadAttention(C, H).double()
    x = torch.randn(3, T, C, dtype=torch.float64)
    w0, b0 = mha.qkv.weight.detach().clone(), mha.qkv.bias.detach().clone()
    cfg = adapt.LoRAConfig(rank=3, alpha=6.0, targets=("q", "v"))
    (layer,) = adapt.add_lora(mha, cfg)
    _randomise(layer.lora_B.values())
    out = layer(x)                                                   # (3, T, 3C)
    base = F.linear(x, w0, b0)
    for i, name in enumerate("qkv"):
        got, want = out[..., i * C:(i + 1) * C], base[..., i * C:(i + 1) * C]
        if name in cfg.targets:  # h = x W0ᵀ + (α/r) (x Aᵀ) Bᵀ
            update = 2.0 * x @ layer.lora_A[name].T @ layer.lora_B[name].T
            torch.testing.assert_close(got, want + update)
        else:
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_merged_equals_unmerged_and_unmerge_restores_the_base(backend):
    model, x = _encoder(backend=backend), _tokens()
    w0 = [b.attn.qkv.weight.detach().clone() for b in model.blocks]
    layers = adapt.add_lora(model, adapt.LoRAConfig(rank=2, alpha=3.0))
    _randomise([p for layer in layers for p in layer.lora_B.values()])
    unmerged = model(x)
    adapt.merge_lora(model)
    assert all(layer.merged for layer in layers)
    torch.testing.assert_close(model(x), unmerged)
    assert not torch.allclose(model.blocks[0].attn.qkv.base.weight, w0[0])  # the update is in W now
    adapt.unmerge_lora(model)
    for block, w in zip(model.blocks, w0, strict=True):
        torch.testing.assert_close(block.attn.qkv.base.weight, w)
    torch.testing.assert_close(model(x), unmerged)


def test_lora_reaches_cross_attention_which_reads_the_weight():
    torch.manual_seed(0)
    block = DecoderBlock(C, H, backend="functional").double()
    x, memory = torch.randn(2, T, C, dtype=torch.float64), torch.randn(2, T + 2, C, dtype=torch.float64)
    before = block(x, memory)
    layers = adapt.add_lora(block)
    torch.testing.assert_close(block(x, memory), before)
    _randomise([p for layer in layers for p in layer.lora_B.values()])
    unmerged = block(x, memory)
    assert not torch.allclose(unmerged, before)
    adapt.merge_lora(block)
    torch.testing.assert_close(block(x, memory), unmerged)


def test_at_initialisation_only_b_gets_a_gradient():
    model, x = _encoder(), _tokens()
    (first, *_) = adapt.add_lora(model)
    upstream = torch.randn(x.shape[0], T, 10, dtype=torch.float64)
    (model(x) * upstream).sum().backward()
    assert first.lora_B["q"].grad.abs().sum() > 0
    assert torch.count_nonzero(first.lora_A["q"].grad) == 0  # dA = (α/r) Bᵀ (...) and B = 0


@pytest.mark.parametrize("kwargs, message", [
    ({"rank": 0}, "positive int"), ({"rank": -2}, "positive int"), ({"rank": 2.5}, "positive int"),
    ({"alpha": 0}, "alpha must be positive"), ({"targets": ("q", "o")}, "distinct names from"),
    ({"targets": ()}, "distinct names from"), ({"targets": ("q", "q")}, "distinct names from"),
])
def test_bad_lora_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adapt.LoRAConfig(**kwargs)


def test_rank_wider_than_the_projection_is_refused():
    with pytest.raises(ValueError, match=f"rank {C + 1} exceeds the projection width {C}"):
        adapt.add_lora(_encoder(), adapt.LoRAConfig(rank=C + 1))
    adapt.add_lora(_encoder(), adapt.LoRAConfig(rank=C))  # full rank is allowed


def test_a_model_without_attention_or_with_lora_already_is_refused():
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        adapt.add_lora(torch.nn.Linear(4, 4))
    model = _encoder()
    adapt.add_lora(model)
    with pytest.raises(ValueError, match="already has LoRA"):
        adapt.add_lora(model)


# --- prefix tuning ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_of_length_zero_is_the_base_model(backend):
    model, x = _encoder(backend=backend), _tokens()
    mask = padding_mask(torch.tensor([6, 3, 1, 5, 2]), T)
    before, before_masked = model(x), model(x, mask)
    adapt.add_prefix(model, adapt.PrefixConfig(length=0))
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    torch.testing.assert_close(model(x, mask), before_masked, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
def test_prefix_keys_and_values_are_read_by_every_query(backend, causal):
    torch.manual_seed(0)
    mha = MultiHeadAttention(C, H, backend=backend).double()
    (prefix,) = adapt.add_prefix(mha, adapt.PrefixConfig(length=3, init_std=1.0))
    x = torch.randn(2, T, C, dtype=torch.float64)
    mask = padding_mask(torch.tensor([T, 2]), T)                   # (2, 1, 1, T)
    got = mha(x, mask, causal=causal)
    # the reference: project, put the prefix in front, let every query see it, attend, project
    q, k, v = F.linear(x, mha.qkv.weight, mha.qkv.bias).split(C, dim=-1)
    k = torch.cat([prefix.keys.expand(2, -1, -1), k], 1)           # (2, 3 + T, C)
    v = torch.cat([prefix.values.expand(2, -1, -1), v], 1)
    allowed = torch.cat([torch.ones(2, 1, 1, 3, dtype=torch.bool), mask], -1)  # (2, 1, 1, 3 + T)
    if causal:
        allowed = allowed & torch.ones(T, T + 3, dtype=torch.bool).tril(diagonal=3)

    def heads(t):
        return t.view(2, -1, H, C // H).transpose(1, 2)            # (2, H, S, Dh)

    out, weights = functional.attention(heads(q), heads(k), heads(v), allowed)
    want = mha.proj(out.transpose(1, 2).reshape(2, T, C))
    torch.testing.assert_close(got, want)
    assert (weights[..., :3].sum(-1) > 0).all()                    # every query reads the prefix


def test_prefix_decomposition_mixes_back_to_attention_over_the_concatenation():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, d, generator=gen, dtype=torch.float64) for n, d in ((5, 4), (7, 4), (7, 3)))
    prefix_k, prefix_v = (torch.randn(3, d, generator=gen, dtype=torch.float64) for d in (4, 3))
    gate, prefix_out, base_out = adapt.prefix_decomposition(q, k, v, prefix_k, prefix_v, 0.5)
    out, _ = functional.attention(q, torch.cat([prefix_k.expand(2, -1, -1), k], 1),
                                  torch.cat([prefix_v.expand(2, -1, -1), v], 1), scale=0.5)
    torch.testing.assert_close(gate[..., None] * prefix_out + (1 - gate[..., None]) * base_out, out)
    torch.testing.assert_close(base_out, functional.attention(q, k, v, scale=0.5)[0])
    with pytest.raises(ValueError, match="one row per prefix"):
        adapt.prefix_decomposition(q, k, v, prefix_k, prefix_v[:2], 0.5)
    with pytest.raises(ValueError, match=r"k \(2, 7, 4\) and v \(2, 6, 3\)"):
        adapt.prefix_decomposition(q, k, v[:, :6], prefix_k, prefix_v, 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_prefix_keeps_the_shape_of_the_first_layers_attention_over_the_input(backend):
    """The identity's consequence, in a model: any prefix rescales the first layer's attention over the
    input keys by (1 − λ) but cannot change its shape (which position each head reads)."""
    model, x = _encoder(backend=backend), _tokens()
    before = attention_maps(model, x)[0]                 # (N, H, T, T): layer 0, base
    adapt.add_prefix(model, adapt.PrefixConfig(length=4, init_std=1.0))
    after = attention_maps(model, x)[0]                  # (N, H, T, 4 + T)
    on_input = after[..., 4:]
    assert (on_input.sum(-1) < 1 - 1e-3).all()                          # the prefix took some mass
    torch.testing.assert_close(on_input / on_input.sum(-1, keepdim=True), before)


def test_bad_prefix_configs_are_refused():
    for kwargs in ({"length": -1}, {"length": 1.5}, {"init_std": -0.1}):
        with pytest.raises(ValueError, match="prefix"):
            adapt.PrefixConfig(**kwargs)


# --- adapters -------------------------------------------------------------------------------------

def test_adapters_start_as_the_identity_and_then_act():
    model, x = _encoder(), _tokens()
    before = model(x)
    adapters = adapt.add_adapters(model, adapt.AdapterConfig(size=4))
    assert len(adapters) == 2 * len(model.blocks)
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    _randomise([a.up.weight for a in adapters])
    assert not torch.allclose(model(x), before)                   # they sit in the forward path


def test_bad_adapter_configs_are_refused():
    for kwargs in ({"size": 0}, {"size": -3}, {"where": ("attn", "ffn")}, {"where": ()}):
        with pytest.raises(ValueError, match="adapter"):
            adapt.AdapterConfig(**kwargs)
    with pytest.raises(ValueError, match=f"adapter size {C + 1} exceeds the model width {C}"):
        adapt.add_adapters(_encoder(), adapt.AdapterConfig(size=C + 1))


# --- freezing -------------------------------------------------------------------------------------

def _step_once(model, x):
    """One backward with a random upstream gradient, one AdamW step with weight decay."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = build_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.5), torch.device("cpu"))
    upstream = torch.randn(x.shape[0], T, 10, dtype=torch.float64)
    (model(x) * upstream).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    optimizer.step()
    return before, grads


@pytest.mark.parametrize("method", adapt.METHODS)
def test_frozen_parameters_get_no_gradient_and_do_not_move(method):
    model, x = _encoder(), _tokens()
    names_before = {n for n, _ in model.named_parameters()}
    adapt.prepare(model, method)
    if method in adapt.PEFT_METHODS:  # an update that is not zero, so gradients reach everything new
        _randomise([p for n, p in model.named_parameters() if n not in names_before and p.dim() == 2])
    before, grads = _step_once(model, x)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained, "something must train"
    for name in frozen:
        assert grads[name] is None, f"{method}: frozen {name} got a gradient"
        assert torch.equal(dict(model.named_parameters())[name], before[name]), f"{method}: {name} moved"
    for name in trained:
        assert grads[name] is not None and not torch.equal(dict(model.named_parameters())[name], before[name])
    expected_frozen = {
        "full": set(),
        "linear_probe": {n for n in names_before if not n.startswith("head.")},
        "freeze_attention": {n for n in names_before if ".attn." in n},
        "freeze_mlp": {n for n in names_before if ".mlp." in n},
    }.get(method, None)
    if expected_frozen is None:  # PEFT: the whole base model is frozen, only the new parameters train
        renamed = {n.replace(".sublayer.", ".").replace(".qkv.base.", ".qkv.") for n in frozen}
        assert renamed == names_before and not set(trained) & names_before
    else:
        assert set(frozen) == expected_frozen


def test_trainable_parameter_counts():
    model = _encoder()
    total = adapt.count_parameters(model)
    assert adapt.trainable_parameters(model) == total
    adapt.prepare(model, "lora", adapt.LoRAConfig(rank=2))
    # two targets (q, v), each A (r, C) and B (C, r), in every layer
    assert adapt.trainable_parameters(model) == len(model.blocks) * 2 * (2 * C + C * 2)
    assert adapt.count_parameters(model) == total + adapt.trainable_parameters(model)
    probe = _encoder()
    adapt.prepare(probe, "linear_probe")
    assert adapt.trainable_parameters(probe) == C * 10 + 10


def test_prepare_refuses_unknown_methods_and_mismatched_configs():
    with pytest.raises(ValueError, match="not one of"):
        adapt.prepare(_encoder(), "bitfit")
    with pytest.raises(TypeError, match="takes a LoRAConfig"):
        adapt.prepare(_encoder(), "lora", adapt.PrefixConfig())
    with pytest.raises(ValueError, match="not one of"):
        adapt.freeze(_encoder(), "attn")
    with pytest.raises(ValueError, match="no output layer"):
        adapt.freeze(torch.nn.Sequential(torch.nn.Linear(2, 2)), "all_but_head")


# --- lesson 10's experiment helpers ---------------------------------------------------------------

def test_rotate_task_shifts_by_k_and_refuses_a_useless_shift():
    from attnflex_lab.adapt.transfer import rotate_task

    task = rotate_task(20, 7, 3, seed=0)
    assert torch.equal(task.y, torch.roll(task.x, -3, dims=1))
    assert torch.equal(task.y, torch.gather(task.x, 1, task.alignment))
    for shift in (0, 7, -1):
        with pytest.raises(ValueError, match="shift must be an int in 1..6"):
            rotate_task(20, 7, shift)


def test_adapt_model_draws_the_new_parameters_from_its_seed_alone():
    """Same seed, different global RNG state before the call: the same adapted model (lesson 10's
    seeds draw the new parameters' start; the state left by earlier cells must not)."""
    from attnflex_lab.adapt.transfer import adapt_model, rotate_task

    base = _encoder().float()
    new = {split: rotate_task(16, T, 1, seed=i) for i, split in enumerate(("train", "val", "test"))}
    adapted = []
    for state in (10, 11):
        torch.manual_seed(state)   # what ran before
        model = adapt_model(base, "prefix", new, new["test"], profile="smoke", seed=3, steps=1).model
        adapted.append({name: p for name, p in model.named_parameters() if p.requires_grad})
    assert adapted[0].keys() == adapted[1].keys() and len(adapted[0]) > 1
    for name, p in adapted[0].items():
        assert torch.equal(p, adapted[1][name]), name


def test_attention_shift_by_head_counts_mass_moved_onto_a_prefix():
    from attnflex_lab.adapt.transfer import attention_shift_by_head

    gen = torch.Generator().manual_seed(0)
    before = torch.softmax(torch.randn(2, 5, 3, T, T, generator=gen), -1)       # (L, N, H, T, S)
    assert np.allclose(attention_shift_by_head(before, before), 0)
    padded = torch.nn.functional.pad(before, (2, 0))                              # 2 unused prefix keys
    assert np.allclose(attention_shift_by_head(before, padded), 0, atol=1e-7)
    onto_prefix = torch.zeros_like(padded)
    onto_prefix[..., 0] = 1.0                                                     # all mass on the prefix
    assert np.allclose(attention_shift_by_head(before, onto_prefix), 1.0)         # disjoint: 1 bit
    with pytest.raises(ValueError, match="may only add keys"):
        attention_shift_by_head(padded, before)


def test_task_token_goes_in_front_and_its_label_is_ignored():
    from attnflex_lab.adapt.multitask import IGNORE, token_loss, with_task_token
    from attnflex_lab.tasks.algorithmic import make_task

    task = make_task("reverse", 4, T, seed=0)
    x, y = with_task_token(task, 11).tensors
    assert x.shape == y.shape == (4, T + 1) and (x[:, 0] == 11).all() and (y[:, 0] == IGNORE).all()
    assert torch.equal(x[:, 1:], task.x) and torch.equal(y[:, 1:], task.y)
    model = SequenceEncoder(EncoderConfig(vocab_size=12, n_classes=10, max_len=T + 1, d_model=C, n_heads=H))
    loss = token_loss(model, (x, y))
    logits = model(x)[:, 1:]                                                      # the digits only
    expected = F.cross_entropy(logits.flatten(0, 1), task.y.flatten())
    torch.testing.assert_close(loss, expected)
