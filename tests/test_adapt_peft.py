"""The lab's LoRA against Hugging Face ``peft``'s, on the lab's own encoder.

peft puts one LoRA on a whole Linear: the fused qkv (C -> 3C) gets A (r', C) and B (3C, r'). The
lab gives q and v an update each. The two agree exactly when peft's rank is r' = 2r with
A = [A_q; A_v], B = [[B_q, 0], [0, 0], [0, B_v]] (no update for the k rows) and α' = 2α, so that
α'/r' = α/r: then B A = [B_q A_q; 0; B_v A_v], the lab's update.
"""

import copy

import pytest
import torch

from attnflex_lab import adapt
from attnflex_lab.models.transformer import EncoderConfig, SequenceEncoder

peft = pytest.importorskip("peft", reason="peft is not installed (pip install 'attnflex-lab[dev]')")

C, H, T, R, ALPHA = 16, 4, 6, 3, 5.0


def _models():
    torch.manual_seed(0)
    base = SequenceEncoder(EncoderConfig(vocab_size=10, n_classes=10, max_len=T, d_model=C, n_heads=H)).double()
    ours, untouched = copy.deepcopy(base), copy.deepcopy(base)
    layers = adapt.add_lora(ours, adapt.LoRAConfig(rank=R, alpha=ALPHA, targets=("q", "v")))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # an update that is not zero (B = 0 would make any two LoRAs agree)
        for layer in layers:
            for p in (*layer.lora_A.values(), *layer.lora_B.values()):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    theirs = peft.inject_adapter_in_model(
        peft.LoraConfig(r=2 * R, lora_alpha=2 * ALPHA, lora_dropout=0.0, target_modules=["qkv"]), base)
    with torch.no_grad():
        for block, layer in zip(theirs.blocks, layers, strict=True):
            a, b = block.attn.qkv.lora_A["default"].weight, block.attn.qkv.lora_B["default"].weight
            assert a.shape == (2 * R, C) and b.shape == (3 * C, 2 * R)
            a.copy_(torch.cat([layer.lora_A["q"], layer.lora_A["v"]]))   # (2r, C)
            b.zero_()
            b[:C, :R] = layer.lora_B["q"]                                   # q rows read A_q
            b[2 * C:, R:] = layer.lora_B["v"]                               # v rows read A_v
    return ours, theirs, untouched


def test_lab_lora_gives_the_same_outputs_as_peft():
    ours, theirs, untouched = _models()
    x = torch.randint(0, 10, (4, T), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours(x), theirs(x))
    assert not torch.allclose(ours(x), untouched(x), atol=1e-3)  # the update is there, and not small


def test_lab_merge_gives_peft_merged_weights():
    ours, theirs, _ = _models()
    adapt.merge_lora(ours)
    for block_ours, block_theirs in zip(ours.blocks, theirs.blocks, strict=True):
        block_theirs.attn.qkv.merge()
        torch.testing.assert_close(block_ours.attn.qkv.base.weight, block_theirs.attn.qkv.base_layer.weight)
