"""The sequence encoder, TinyGPT and the ViT: shapes, causality, weight tying, presets, errors."""

import pytest
import torch

from attnflex_lab.models.transformer import EncoderConfig, GPTConfig, SequenceEncoder, TinyGPT
from attnflex_lab.models.vit import PatchEmbedding, TinyViT, ViTConfig
from attnflex_lab.modules import run_with_cache, set_backend
from attnflex_lab.recipes.lm import GPT_PRESETS, gpt_config


def test_encoder_shapes_and_cache():
    model = SequenceEncoder(EncoderConfig(vocab_size=10, n_classes=10, max_len=8, n_layers=2))
    x = torch.randint(0, 10, (5, 8))
    logits, cache = run_with_cache(model, x)
    assert logits.shape == (5, 8, 10)
    assert cache.patterns().shape == (2, 5, 4, 8, 8)   # (L, B, H, T, S)


def test_encoder_rejects_bad_tokens():
    model = SequenceEncoder(EncoderConfig(vocab_size=10, max_len=8))
    with pytest.raises(ValueError, match="0..9"):
        model(torch.tensor([[3, 10]]))
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(1, 4))


def _small_gpt(**kw):
    torch.manual_seed(0)
    return TinyGPT(GPTConfig(vocab_size=11, block_size=16, n_layers=2, n_heads=2, d_model=16, **kw))


def test_gpt_is_causal():
    model = _small_gpt().eval()
    x = torch.randint(0, 11, (2, 12))
    changed = x.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 11        # change only the future of position 6
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (2, 12, 11)
    torch.testing.assert_close(a[:, :7], b[:, :7])    # the past does not see the change
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-4   # the future does


@pytest.mark.parametrize("backend", ["functional", "ops"])
def test_gpt_backends_give_the_same_logits(backend):
    model = _small_gpt().eval()
    x = torch.randint(0, 11, (2, 10))
    with torch.no_grad():
        reference = model(x)
        set_backend(model, backend)
        torch.testing.assert_close(model(x), reference, atol=1e-5, rtol=0)


def _gpt_params_by_architecture(V, T, L, C):
    """Count from the architecture: per block qkv (3C² + 3C), proj (C² + C), MLP (8C² + 5C) and two
    LayerNorms (4C); plus the token table (shared with the output layer), the position table and
    the final LayerNorm (2C)."""
    per_block = (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C) + 4 * C
    assert per_block == 12 * C * C + 13 * C
    return V * C + T * C + L * per_block + 2 * C


def test_gpt_weight_tying_and_param_count():
    """Planted bugs caught: the tied table counted twice (+V·C), the position table kept in the
    non-embedding count, a missing bias or LayerNorm."""
    model = _small_gpt()
    assert model.lm_head.weight is model.tok_emb.weight
    expected = _gpt_params_by_architecture(V=11, T=16, L=2, C=16)
    assert expected == 176 + 256 + 2 * 3280 + 32 == 7024
    assert model.num_params() == expected
    assert model.num_params(non_embedding=True) == expected - 16 * 16


def test_gpt_generate_appends_tokens_within_vocab():
    model = _small_gpt().eval()
    out = model.generate(torch.zeros(2, 3, dtype=torch.long), 20, top_k=3,
                         generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 23) and out.max() < 11 and out.min() >= 0
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 1, dtype=torch.long), 1, temperature=0)


def test_gpu_preset_is_gpt2_small_shaped():
    cfg = gpt_config(65, profile_name="gpu")
    assert (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.block_size) == (12, 12, 768, 1024)
    with torch.device("meta"):                       # shapes only: no 340 MB of weights
        model = TinyGPT(cfg)
    assert model.num_params() == _gpt_params_by_architecture(V=65, T=1024, L=12, C=768)
    assert set(GPT_PRESETS) == {"smoke", "cpu", "gpu"}


def test_vit_shapes_and_patch_order():
    cfg = ViTConfig(d_model=16, n_layers=2, n_heads=2, dropout=0.0)
    model = TinyViT(cfg)
    images = torch.rand(3, 1, 8, 8)
    logits, cache = run_with_cache(model, images)
    assert logits.shape == (3, 10)
    assert cache.patterns().shape == (2, 3, 2, 17, 17)   # 16 patches + [CLS]
    # Patch p covers rows 2·(p // 4) .. +1 and columns 2·(p % 4) .. +1 (row-major).
    embed = PatchEmbedding(cfg)
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 2:4, 4:6] = 1.0                           # grid cell (1, 2) -> patch 6
    tokens = embed(image) - embed(torch.zeros(1, 1, 8, 8))
    moved = tokens.abs().sum(-1)[0]                       # (P,)
    assert moved.argmax().item() == 6 and (moved > 1e-6).sum().item() == 1


def test_vit_rejects_wrong_images():
    model = TinyViT()
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        model(torch.rand(2, 1, 7, 7))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        TinyViT(ViTConfig(patch_size=3))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.long))


def test_reads_right_token_counts_any_copy_and_checks_shapes():
    from attnflex_lab.recipes.sequence import reads_right_token

    x = torch.tensor([[2, 1, 2]])                      # (N, S): two copies of the digit 2
    y = torch.tensor([[1, 2, 2]])                      # (N, T): the sorted digits
    pattern = torch.eye(3)[[1, 2, 0]].unsqueeze(0)     # (N, T, S): output i reads input 1, 2, 0
    assert reads_right_token(pattern, x, y) == 1.0     # either copy of 2 counts
    assert reads_right_token(torch.eye(3).unsqueeze(0), x, y) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"pattern \(N, T, S\)"):
        reads_right_token(pattern[0], x, y)


def test_lm_and_vit_recipes_run_in_smoke_and_report_their_metrics():
    import json
    import math
    import subprocess
    import sys

    from attnflex_lab import recipes
    from attnflex_lab.recipes import train_recipe
    from attnflex_lab.recipes.lm import lm_eval

    done = subprocess.run([sys.executable, "-m", "attnflex_lab", "train", "--task", "lm",
                           "--profile", "smoke", "--no-progress"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"val_loss", "tokens_per_second", "final_loss", "steps", "seconds",
            "weights_sha256"} <= set(line)
    # 20 smoke steps must beat the same model untrained (whose loss is ln V: uniform guessing);
    # planted: a learning rate of 1e-9 leaves val_loss at the untrained 3.76, which "< 10" passed.
    untrained = recipes.build("lm", profile_name="smoke", seed=0)
    vocab = untrained.extras["tokenizer"].vocab_size
    untrained_loss = lm_eval(untrained.model.eval(), untrained.val_data)["val_loss"]
    assert untrained_loss == pytest.approx(math.log(vocab), abs=0.05)
    assert line["val_loss"] < untrained_loss - 0.3, (line["val_loss"], untrained_loss)
    assert line["n_params"] == _gpt_params_by_architecture(V=vocab, T=32, L=2, C=32)
    assert line["tokens_per_second"] > 0
    metrics, run, history = train_recipe("vit", profile_name="smoke", progress=False)
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["steps"] == run.cfg.steps
    assert history.final_loss < history.steps[0]["loss"]
