"""The precision and device tier (issue 19 §2): every kernel and module in bf16 and fp16 on the CPU
against an fp64 reference, and the forward paths on a device that is not the CPU.

Tolerances are not hand-picked; each is a multiple of an error measured on the same inputs:

- **Attention kernels and modules**: torch's own SDPA in the same dtype. Its CPU kernel keeps the
  scores, the weights and the running sums in fp32 and rounds once, at the output (the backward
  likewise, once per gradient). An unfused implementation in the dtype also rounds the scores, the
  weights and the matmul inputs: up to four roundings of the size SDPA makes once, hence
  ``K_KERNEL = 4``. (Measured ratios: 1.5–2.6 for values and gradients, seeds 0–2.)
- **Positional encodings and rope**: the dtype's own floor, the error of rounding the exact (fp64)
  answer to the dtype. They round the table (or the fp32 rotation) and the result: two roundings,
  hence ``K_ROUNDING = 2``.

The reference runs in fp64 on the *same* rounded inputs and weights, so what is measured is the
arithmetic, not the rounding of the inputs. Relative errors are norm-wise: ‖low − ref‖ / ‖ref‖.
Flash attention is tested by its own module (tests/test_flash.py).

Planted bugs these tests caught (each tried, seen failing, reverted): the softmax weights rounded
to bf16 inside an fp16 run (the functional, sliding-window and GQA rows fail); rope's angle cast to
the input dtype before cos/sin (the old code: 40 % off in bf16, 4 % in fp16); linear attention's
running state rounded to bf16 after each chunk; the causal mask built on the CPU instead of the
input's device (the meta-device forwards fail). The tier found one bug itself: ``ops`` asked autocast
about the "meta" device, which raises, so the ops backend could not run shape-only.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from attnflex_lab import functional, ops, positional
from attnflex_lab.adapt import PrefixConfig, add_prefix
from attnflex_lab.kernels import efficient, kv_cache
from attnflex_lab.models.transformer import GPTConfig, TinyGPT
from attnflex_lab.modules import BACKENDS, MultiHeadAttention

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K_KERNEL = 4     # unfused kernels round up to four times where SDPA rounds once (module docstring)
K_ROUNDING = 2   # positional encodings round twice: the table and the sum
LOW = [torch.bfloat16, torch.float16]
B, H, T, D = 2, 2, 64, 16


def rel_error(low: torch.Tensor, ref: torch.Tensor) -> float:
    return float((low.detach().double() - ref.detach()).norm() / ref.detach().norm())


def _qkvg(dtype, seed=0, kv_heads=H):
    """q, k, v and an upstream gradient in ``dtype`` (random, never ones: see STYLE.md)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(B, H, T, D), (B, kv_heads, T, D), (B, kv_heads, T, D), (B, H, T, D)]
    return [torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]


def _value_and_grads(fn, q, k, v, grad):
    """fn(q, k, v) and its gradients with upstream ``grad`` (both in the inputs' dtype)."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves)
    return out, torch.autograd.grad(out, leaves, grad.to(out.dtype))


def _errors(fn, reference_fn, q, k, v, grad) -> tuple[float, float]:
    """(value error, worst gradient error) of fn in the inputs' dtype against reference_fn in fp64."""
    out, grads = _value_and_grads(fn, q, k, v, grad)
    ref, ref_grads = _value_and_grads(reference_fn, *(t.double() for t in (q, k, v, grad)))
    return rel_error(out, ref), max(rel_error(g, r) for g, r in zip(grads, ref_grads, strict=True))


CAUSAL = torch.ones(T, T, dtype=torch.bool).tril()     # (T, S)


def _sdpa_causal(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=CAUSAL)


KERNELS = {  # name -> (the kernel, the same attention through SDPA: its fp64 run is the reference)
    "functional.attention": (lambda q, k, v: functional.attention(q, k, v, CAUSAL)[0], _sdpa_causal),
    "ops.attention": (lambda q, k, v: ops.attention(q, k, v, CAUSAL)[0], _sdpa_causal),
    "efficient.sliding_window": (
        lambda q, k, v: efficient.sliding_window_attention(q, k, v, window=8, block=16),
        lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=efficient.sliding_window_mask(T, window=8, device=q.device))),
}


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", list(KERNELS))
def test_attention_kernels_are_within_k_times_sdpa_in_low_precision(name, dtype):
    q, k, v, grad = _qkvg(dtype)
    kernel, sdpa_same_math = KERNELS[name]
    sdpa_value, sdpa_grad = _errors(sdpa_same_math, sdpa_same_math, q, k, v, grad)
    value, grads = _errors(kernel, sdpa_same_math, q, k, v, grad)
    assert value <= K_KERNEL * sdpa_value, f"{name} {dtype}: value error {value:.2e}, SDPA {sdpa_value:.2e}"
    assert grads <= K_KERNEL * sdpa_grad, f"{name} {dtype}: gradient error {grads:.2e}, SDPA {sdpa_grad:.2e}"


@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_grouped_query_attention_in_low_precision(dtype):
    """MQA (G = 1): against SDPA over the shared K/V head repeated H times."""
    q, k, v, grad = _qkvg(dtype, kv_heads=1)

    def sdpa_repeated(q, k, v):
        return F.scaled_dot_product_attention(q, k.expand(-1, H, -1, -1), v.expand(-1, H, -1, -1))

    sdpa_value, sdpa_grad = _errors(sdpa_repeated, sdpa_repeated, q, k, v, grad)
    value, grads = _errors(efficient.grouped_query_attention, sdpa_repeated, q, k, v, grad)
    assert value <= K_KERNEL * sdpa_value and grads <= K_KERNEL * sdpa_grad, (value, grads, sdpa_value, sdpa_grad)


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "quadratic"])
def test_linear_attention_in_low_precision(dtype, chunked):
    """No SDPA computes linear attention: its own fp64 run is the reference, and SDPA's error on
    the same q, k, v in the same dtype the yardstick (an attention kernel of that size)."""
    q, k, v, grad = _qkvg(dtype)
    sdpa_value, sdpa_grad = _errors(_sdpa_causal, _sdpa_causal, q, k, v, grad)

    def linear(q, k, v):
        if chunked:
            return efficient.linear_attention(q, k, v, causal=True, chunk=16)
        return efficient.linear_attention_quadratic(q, k, v, causal=True)

    value, grads = _errors(linear, lambda q, k, v: efficient.linear_attention_quadratic(q, k, v, causal=True),
                           q, k, v, grad)
    assert value <= K_KERNEL * sdpa_value and grads <= K_KERNEL * sdpa_grad, (value, grads, sdpa_value, sdpa_grad)


# --- positional encodings and rope: the dtype's own rounding floor -----------------------------------

def _encodings():
    torch.manual_seed(0)
    return {
        "rope": lambda x: positional.rope(x),
        "sinusoidal": positional.SinusoidalPositionalEncoding(D, max_len=2048),
        "learned": positional.LearnedPositionalEncoding(D, max_len=2048),
    }


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", ["rope", "sinusoidal", "learned"])
def test_positional_encodings_are_as_good_as_rounding_their_answer(name, dtype):
    """Long sequences (T = 2048) are where a low-precision position goes wrong (t·ω in bf16)."""
    x = torch.randn(1, 2048, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    encode = _encodings()[name]
    if isinstance(encode, torch.nn.Module):
        low_encode, encode = copy.deepcopy(encode).to(dtype), encode.to(dtype).double()  # same rounded weights
    else:
        low_encode = encode
    exact = encode(x.double())
    floor = rel_error(exact.to(dtype), exact)
    low = low_encode(x)
    error = rel_error(low, exact)
    assert low.dtype == dtype
    assert error <= K_ROUNDING * floor, f"{name} {dtype}: error {error:.2e}, rounding floor {floor:.2e}"


# --- modules: MultiHeadAttention on every backend, TinyGPT -------------------------------------------

def _mha_by_hand(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """The layer written with torch primitives around SDPA, in the dtype of its weights: the yardstick."""
    Bx, Tx, C = x.shape
    q, k, v = F.linear(x, mha.qkv.weight, mha.qkv.bias).split(C, dim=-1)            # 3 × (B, T, C)
    q, k, v = (t.view(Bx, Tx, mha.n_heads, -1).transpose(1, 2) for t in (q, k, v))   # (B, H, T, Dh)
    z = F.scaled_dot_product_attention(q, k, v, is_causal=True)                       # (B, H, T, Dh)
    return F.linear(z.transpose(1, 2).reshape(Bx, Tx, C), mha.proj.weight, mha.proj.bias)  # (B, T, C)


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_head_attention_in_low_precision(backend, dtype):
    torch.manual_seed(0)
    low = MultiHeadAttention(32, 4, backend=backend).to(dtype)
    exact = copy.deepcopy(low).double()                                   # the same rounded weights
    x, grad = (torch.randn(B, T, 32, dtype=torch.float64).to(dtype) for _ in range(2))
    x_low, x_exact = x.clone().requires_grad_(), x.double().requires_grad_()
    out, ref = low(x_low, causal=True), exact(x_exact, causal=True)
    (g_low,) = torch.autograd.grad(out, x_low, grad)
    (g_ref,) = torch.autograd.grad(ref, x_exact, grad.double())
    x_hand = x.clone().requires_grad_()
    hand = _mha_by_hand(low, x_hand)
    (g_hand,) = torch.autograd.grad(hand, x_hand, grad)
    yard_value, yard_grad = rel_error(hand, ref), rel_error(g_hand, g_ref)
    assert rel_error(out, ref) <= K_KERNEL * yard_value, (rel_error(out, ref), yard_value)
    assert rel_error(g_low, g_ref) <= K_KERNEL * yard_grad, (rel_error(g_low, g_ref), yard_grad)


@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_tiny_gpt_backends_in_low_precision(dtype):
    """Every backend's logits within K_KERNEL × the sdpa backend's error (the same model, weights and
    tokens); the layers they share are checked at their own level above."""
    idx = torch.randint(0, 20, (B, 32), generator=torch.Generator().manual_seed(0))
    errors = {}
    for backend in BACKENDS:
        torch.manual_seed(0)
        low = TinyGPT(GPTConfig(vocab_size=20, block_size=32, n_layers=2, n_heads=4, d_model=32,
                                backend=backend)).to(dtype).eval()
        errors[backend] = rel_error(low(idx), copy.deepcopy(low).double()(idx))
    assert all(e <= K_KERNEL * errors["sdpa"] for e in errors.values()), errors


# --- devices: the forward paths on a device that is not the CPU ------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_forwards_stay_on_the_inputs_device(backend):
    """On ``meta`` (shapes without data) a tensor made on the CPU inside a forward meets the inputs
    and fails, as it would on a GPU: masks, positions, prefixes and caches must follow the input."""
    torch.manual_seed(0)
    model = TinyGPT(GPTConfig(vocab_size=20, block_size=16, n_layers=2, n_heads=2, d_model=16,
                              backend=backend))
    add_prefix(model, PrefixConfig(length=2))
    model = model.to("meta").train()        # (in eval, the token-range check reads ids back: no data here)
    idx = torch.zeros(2, 6, dtype=torch.long, device="meta")
    cache = kv_cache.KVCache()
    logits = model(idx, past_kv=cache)
    step = model(idx[:, :1], past_kv=cache)                              # one cached step
    assert logits.device.type == step.device.type == "meta"
    assert logits.shape == (2, 6, 20) and step.shape == (2, 1, 20) and cache.length == 7
    mha = MultiHeadAttention(16, 2, backend=backend).to("meta")
    x = torch.empty(2, 5, 16, device="meta")
    memory = torch.empty(2, 3, 16, device="meta")
    assert mha(x, causal=True).device.type == "meta"
    assert mha(x, torch.ones(2, 1, 1, 3, dtype=torch.bool, device="meta"), kv=memory).shape == (2, 5, 16)
    assert positional.rope(torch.empty(2, 5, 8, device="meta")).device.type == "meta"
