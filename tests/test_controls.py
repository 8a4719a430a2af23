"""controls.py: fills that differ from IG's baseline, randomised weights (Adebayo et al. 2018), and the
adversarial-attention search (Jain & Wallace 2019) on models whose answer is known."""

import pytest
import torch
from torch import nn

from attnflex_lab.analysis import controls
from attnflex_lab.models.vit import TinyViT, ViTConfig
from attnflex_lab.modules import MultiHeadAttention


def _vit(seed=0, n_layers=2):
    torch.manual_seed(seed)
    model = TinyViT(ViTConfig(d_model=16, n_heads=2, n_layers=n_layers, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def test_fills():
    images = torch.rand(4, 2, 8, 8)
    assert (controls.fill_images(images, "zero") == 0).all()
    mean = controls.fill_images(images, "mean")
    assert mean.shape == (1, 2, 8, 8)
    torch.testing.assert_close(mean[0, :, 3, 5], images.mean(dim=(0, 2, 3)))
    reference = torch.ones(10, 2, 8, 8)
    assert (controls.fill_images(images, "mean", reference) == 1).all()
    blur = controls.fill_images(images, "blur")
    assert blur.shape == images.shape
    inner = (images[:, :, 1:-1, 1:-1] * 4 + images[:, :, :-2, 1:-1] * 2 + images[:, :, 2:, 1:-1] * 2
             + images[:, :, 1:-1, :-2] * 2 + images[:, :, 1:-1, 2:] * 2 + images[:, :, :-2, :-2]
             + images[:, :, :-2, 2:] + images[:, :, 2:, :-2] + images[:, :, 2:, 2:]) / 16
    torch.testing.assert_close(blur[:, :, 1:-1, 1:-1], inner)          # a 3×3 binomial, per channel
    torch.testing.assert_close(controls.fill_images(torch.full((1, 1, 8, 8), 0.7), "blur"),
                               torch.full((1, 1, 8, 8), 0.7))         # a flat image stays flat
    with pytest.raises(ValueError, match="not one of"):
        controls.fill_images(images, "noise")


def test_randomized_copy_redraws_every_weight_and_leaves_the_model():
    model = _vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    noise = controls.randomized_copy(model, seed=1)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name])                # the original is untouched
    changed = {n for n, p in noise.named_parameters() if not torch.equal(p, dict(model.named_parameters())[n])}
    assert changed == {n for n, _ in model.named_parameters()}         # cls and positions too
    again = controls.randomized_copy(model, seed=1)
    for a, b in zip(noise.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b)                               # one seed, one draw
    assert not noise.training


class _ReadsItsAttention(nn.Module):
    """One head over 8 one-hot-ish tokens, values = the tokens, logits = 10 × token 0's output: the
    prediction *is* the attention row, so no other row can keep it (unless ``used`` is False)."""

    def __init__(self, used=True):
        super().__init__()
        torch.manual_seed(0)
        self.attn = MultiHeadAttention(8, 1, backend="sdpa")
        with torch.no_grad():
            self.attn.qkv.weight[16:] = torch.eye(8)                   # W_V = I
            self.attn.qkv.bias.zero_()
            self.attn.proj.weight.copy_(torch.eye(8) if used else torch.zeros(8, 8))
            self.attn.proj.bias.zero_()

    def forward(self, x):
        return 10.0 * self.attn(x)[:, 0]                               # (B, 8)


def test_adversarial_attention_finds_a_free_row_only_where_the_output_ignores_it():
    x = torch.eye(8).expand(6, 8, 8) + 0.3 * torch.randn(6, 8, 8, generator=torch.Generator().manual_seed(2))
    free = _ReadsItsAttention(used=False).eval()
    found = controls.adversarial_attention(free, x, steps=20)
    assert found["jsd"].min() > 0.4                                    # far from the learned row (≤ ln 2)
    assert found["tvd"].max() < 1e-5
    torch.testing.assert_close(found["adversarial"].sum(-1), torch.ones(6, 1))
    assert free.attn.backend == "sdpa" and all(p.requires_grad for p in free.parameters())

    bound = 0.01
    used = _ReadsItsAttention(used=True).eval()
    out = controls.adversarial_attention(used, x, steps=20, max_output_change=bound)
    assert out["tvd"].max() <= bound                                   # only rows that kept the output
    assert out["jsd"].max() < 0.05                                     # and those stay close to it
    with pytest.raises(ValueError, match="eval"):
        controls.adversarial_attention(used.train(), x)
