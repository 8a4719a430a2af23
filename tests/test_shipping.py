"""attnflex_lab.serve.shipping: int8 quantization, serialized size, torch.export, the latency table."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from attnflex_lab.models.transformer import EncoderConfig, SequenceEncoder
from attnflex_lab.models.vit import TinyViT, ViTConfig
from attnflex_lab.serve.shipping import export_model, latency_table, model_size_bytes, onnx_available, quantize_int8

pytestmark = pytest.mark.filterwarnings(
    # torch 2.13 deprecates torch.ao.quantization in favour of torchao (not a lab dependency); the
    # warning is expected here and stays visible to every other caller
    "ignore:torch.ao.quantization is deprecated:DeprecationWarning",
    "ignore:torch.quantize_per_tensor:UserWarning")


@pytest.fixture(scope="module")
def encoder() -> SequenceEncoder:
    torch.manual_seed(0)
    return SequenceEncoder(EncoderConfig(vocab_size=10, n_classes=10, max_len=8, d_model=64,
                                         n_heads=4, n_layers=2)).eval()


def tokens(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 10, (batch, 8), generator=torch.Generator().manual_seed(seed))  # (B, T)


def test_quantized_copy_is_close_smaller_and_leaves_the_original(encoder):
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    small = quantize_int8(encoder)
    x = tokens(64)
    with torch.no_grad():
        ref, out = encoder(x), small(x)                              # (B, T, V) each
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    assert 0 < rel < 0.1, f"int8 logits differ by {rel:.3f} of the largest logit"
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9
    assert model_size_bytes(small) < 0.5 * model_size_bytes(encoder)  # Linear weights 4 bytes -> 1
    assert not any(type(m) is nn.Linear for m in small.modules())    # every Linear became int8
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in small.modules())
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    assert all(type(m) is not nn.Linear or m.weight.dtype == torch.float32 for m in encoder.modules())


def test_quantize_leaves_a_training_model_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2)).train()
    small = quantize_int8(model)
    assert model.training and not small.training          # the copy is for inference, in eval mode
    assert all(type(m) is not nn.Linear or m.weight.dtype == torch.float32 for m in model)
    x = torch.randn(5, 4)
    torch.testing.assert_close(small(x), small(x))        # no dropout left on in the copy


def test_quantize_refuses_what_it_cannot_quantize():
    with pytest.raises(TypeError, match="nn.Module"):
        quantize_int8(lambda x: x)
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_int8(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="float64"):
        quantize_int8(nn.Linear(4, 4).double())


def test_quantize_warns_about_the_deprecated_api_rather_than_hiding_it(encoder):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantize_int8(encoder)
    assert any("torch.ao.quantization is deprecated" in str(w.message) for w in caught)


def test_model_size_counts_the_serialized_weights():
    small, big = nn.Linear(10, 10), nn.Linear(100, 100)
    assert model_size_bytes(small) > 4 * 110
    assert model_size_bytes(big) - model_size_bytes(small) == pytest.approx(4 * (10100 - 110), rel=0.05)
    with pytest.raises(TypeError):
        model_size_bytes({"w": torch.zeros(3)})


def test_exported_program_matches_eager_on_fresh_inputs_and_other_batches(encoder):
    program = export_model(encoder, (tokens(4),))
    assert isinstance(program, torch.export.ExportedProgram)
    run = program.module()
    for batch, seed in ((4, 7), (1, 8), (33, 9)):                     # the batch dim is dynamic
        x = tokens(batch, seed)
        with torch.no_grad():
            torch.testing.assert_close(run(x), encoder(x), rtol=1e-5, atol=1e-6)
    assert not encoder.training


def test_export_with_a_tuple_output_and_a_fixed_batch():
    torch.manual_seed(0)
    vit = TinyViT(ViTConfig(d_model=32, n_layers=1))
    vit.train()                                                       # export switches to eval and back
    images = torch.rand(2, 1, 8, 8)
    program = export_model(vit, (images,), dynamic_batch=False)
    assert vit.training
    vit.eval()
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images), vit(images))
    with pytest.raises(Exception):                                    # noqa: B017 (torch's guard error)
        program.module()(torch.rand(3, 1, 8, 8))


def test_export_refuses_bad_examples(encoder):
    with pytest.raises(TypeError, match="tuple"):
        export_model(encoder, tokens(2))
    with pytest.raises(TypeError, match="not a tensor"):
        export_model(encoder, ([1, 2],))
    with pytest.raises(ValueError, match="at least 2"):
        export_model(encoder, (tokens(1),))
    with pytest.raises(ValueError, match=r"same batch size.*\(2, 8\).*\(3, 8\)"):
        export_model(lambda_two_inputs(), (tokens(2), tokens(3)))
    assert isinstance(onnx_available(), bool)


class lambda_two_inputs(nn.Module):  # noqa: N801 (a throwaway module with two inputs)
    def forward(self, a, b):
        return a + b


def test_latency_table_rows_are_complete_and_consistent():
    calls = {"slow": 0, "fast": 0}

    def slow(x):
        calls["slow"] += 1
        return torch.linalg.matrix_power(x, 40)

    def fast(x):
        calls["fast"] += 1
        return x

    rows = latency_table({"slow": slow, "fast": fast}, lambda b: (torch.rand(b, 24, 24),),
                         batch_sizes=(1, 8), repeats=5, warmup=1)
    assert [(r["variant"], r["batch"]) for r in rows] == [("slow", 1), ("fast", 1), ("slow", 8), ("fast", 8)]
    assert calls == {"slow": 12, "fast": 12}                           # (warm-up + repeats) x batches
    for row in rows:
        assert set(row) == {"variant", "batch", "p50_ms", "p99_ms", "items_per_s"}
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["items_per_s"] == pytest.approx(row["batch"] / (row["p50_ms"] / 1e3))
    by = {(r["variant"], r["batch"]): r for r in rows}
    assert by["slow", 8]["p50_ms"] > by["fast", 8]["p50_ms"]


def test_latency_table_refuses_bad_arguments():
    def inputs(b):
        return (torch.zeros(b, 2),)

    with pytest.raises(TypeError, match="non-empty dict"):
        latency_table({}, inputs)
    with pytest.raises(TypeError, match="not callable"):
        latency_table({"x": 3}, inputs)
    with pytest.raises(ValueError, match="positive ints"):
        latency_table({"id": lambda x: x}, inputs, batch_sizes=(0,))
    with pytest.raises(ValueError, match="repeats"):
        latency_table({"id": lambda x: x}, inputs, repeats=1)
    with pytest.raises(ValueError, match="gave batch 2, not 3"):
        latency_table({"id": lambda x: x}, lambda b: (torch.zeros(2, 2),), batch_sizes=(3,), repeats=2)
