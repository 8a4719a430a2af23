"""Lesson 05 exercises: the pieces of multi-head self-attention."""

import copy
import math

import torch
import torch.nn.functional as F

from ..modules import TransformerBlock
from ..profiles import run_steps
from . import Exercise, register


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, H, T, C / H): each head gets its own slice of the width."""
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)  # (B, T, H, Dh) -> (B, H, T, Dh)


def _split_inputs(gen: torch.Generator):
    n_heads = int(torch.randint(1, 5, (1,), generator=gen))
    width = n_heads * int(torch.randint(2, 6, (1,), generator=gen))
    return torch.randn(2, 5, width, generator=gen), n_heads


register(Exercise(
    id="05.split_heads",
    prompt="Write split_heads(x, n_heads): reshape x (B, T, C) to (B, H, T, C // H).",
    solution=split_heads,
    make_inputs=_split_inputs,
    hint="view as (B, T, H, C // H) first, then swap the T and H dims; a plain reshape to "
         "(B, H, T, Dh) mixes positions and heads.",
    hints=("each head owns a contiguous slice of width C // H of every position's vector.",
           "x.view(B, T, H, C // H) splits the last dim; which two dims must then change places?",
           "a plain reshape to (B, H, T, Dh) reads the memory in the wrong order: view, then transpose(1, 2)."),
))


def causal_mask(T: int) -> torch.Tensor:
    """(T, T) bool, True where query i may attend to key j, i.e. j ≤ i."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def _mask_inputs(gen: torch.Generator):
    return (int(torch.randint(1, 9, (1,), generator=gen)),)


register(Exercise(
    id="05.causal_mask",
    prompt="Write causal_mask(T): a (T, T) bool tensor, True where key j ≤ query i.",
    solution=causal_mask,
    make_inputs=_mask_inputs,
    hint="True means 'may attend' here: the lower triangle, diagonal included (torch.tril).",
    hints=("query i may see key j when j ≤ i: draw the (T, T) grid and shade the allowed cells.",
           "the allowed cells form the lower triangle, diagonal included; the dtype is torch.bool.",
           "torch.ones(T, T, dtype=torch.bool).tril()."),
    guards=("attnflex_lab.modules:causal_mask",),
    compare=lambda got, exp: (None if isinstance(got, torch.Tensor) and got.dtype == torch.bool
                              and got.shape == exp.shape and torch.equal(got, exp)
                              else f"expected a bool tensor of shape {tuple(exp.shape)} equal to "
                                   f"the lower triangle, got {_describe(got)}"),
))


def sinusoidal_encoding(T: int, C: int) -> torch.Tensor:
    """(T, C): PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C))."""
    position = torch.arange(T).unsqueeze(1)                                      # (T, 1)
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, C, 2) / C)  # (C/2,)
    pe = torch.zeros(T, C)
    pe[:, 0::2] = torch.sin(position * inv_freq)                                 # (T, C/2)
    pe[:, 1::2] = torch.cos(position * inv_freq)
    return pe


def _pe_inputs(gen: torch.Generator):
    return int(torch.randint(2, 20, (1,), generator=gen)), 2 * int(torch.randint(1, 9, (1,), generator=gen))


register(Exercise(
    id="05.sinusoidal_encoding",
    prompt="Write sinusoidal_encoding(T, C): the (T, C) sin/cos table of Vaswani et al.",
    solution=sinusoidal_encoding,
    make_inputs=_pe_inputs,
    hint="even columns 2i hold sin(t·ω_i), odd columns 2i+1 hold cos(t·ω_i), with "
         "ω_i = 10000^(-2i/C): the same frequency for a sin/cos pair.",
    hints=("column pairs (2i, 2i + 1) share one frequency ω_i; position t is the phase.",
           "ω_i = 10000^(-2i/C) = exp(-ln(10000) · 2i / C) for 2i in torch.arange(0, C, 2).",
           "fill pe[:, 0::2] with sin(t·ω) and pe[:, 1::2] with cos(t·ω), t a (T, 1) column."),
    guards=("attnflex_lab.positional:SinusoidalPositionalEncoding.__init__",),
    atol=1e-5,
))


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"dtype {x.dtype}, shape {tuple(x.shape)}"
    return type(x).__name__


# --- building the transformer: multi-head attention's forward, then a pre-LN block -------------------

def mha_forward(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask=None):
    """Multi-head self-attention from its weights (the layout of ``modules.MultiHeadAttention``).

    x (B, T, C); w_qkv (3C, C) and b_qkv (3C,) hold W_Q, W_K, W_V stacked as in ``nn.Linear``;
    w_o (C, C), b_o (C,) mix the heads; mask bool, broadcastable to (B, H, T, T), True = may attend.
    """
    B, T, C = x.shape
    D = C // n_heads                                                   # the head width
    q, k, v = (x @ w_qkv.T + b_qkv).split(C, dim=-1)                  # (B, T, 3C) -> 3 × (B, T, C)
    q, k, v = (t.view(B, T, n_heads, D).transpose(1, 2) for t in (q, k, v))  # -> (B, H, T, D)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)                   # (B, H, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))              # masked pairs get weight 0
    pattern = scores.softmax(dim=-1)                                   # (B, H, T, T), rows sum to 1
    out = pattern @ v                                                  # (B, H, T, D)
    out = out.transpose(1, 2).reshape(B, T, C)                         # merge: -> (B, T, H, D) -> (B, T, C)
    return out @ w_o.T + b_o                                           # (B, T, C)


def _mha_inputs(gen: torch.Generator):
    n_heads = int(torch.randint(1, 4, (1,), generator=gen))
    C = n_heads * int(torch.randint(2, 5, (1,), generator=gen))
    B, T = 2, int(torch.randint(2, 7, (1,), generator=gen))
    x = torch.randn(B, T, C, generator=gen)
    w_qkv, b_qkv = torch.randn(3 * C, C, generator=gen) / math.sqrt(C), torch.randn(3 * C, generator=gen)
    w_o, b_o = torch.randn(C, C, generator=gen) / math.sqrt(C), torch.randn(C, generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)                        # (B,)
    pad = (torch.arange(T) < lengths[:, None])[:, None, None, :]                 # (B, 1, 1, T)
    mask = pad & causal_mask(T)                                                  # (B, 1, T, T): never an empty row
    return x, w_qkv, b_qkv, w_o, b_o, n_heads, mask


register(Exercise(
    id="05.mha_forward",
    prompt="Write mha_forward(x, w_qkv, b_qkv, w_o, b_o, n_heads, mask): project to q, k, v, split "
           "the heads, scaled masked softmax, weighted sum, merge the heads, output projection.",
    solution=mha_forward,
    make_inputs=_mha_inputs,
    hint="q, k, v = (x @ w_qkv.T + b_qkv).split(C, -1); split each head with view(B, T, H, D)."
         "transpose(1, 2); divide the scores by √D (the head width D = C/H, not C); masked_fill(~mask, -inf) "
         "before the softmax; merge with transpose(1, 2).reshape(B, T, C) before w_o.",
    hints=("one linear map gives q, k and v at once: x @ w_qkv.T + b_qkv has width 3C; split it in three.",
           "split heads as in 05.split_heads; scores (B, H, T, T) scaled by 1/√D with D = C // H, "
           "masked_fill(~mask, -inf), softmax over the keys.",
           "merge: (pattern @ v).transpose(1, 2).reshape(B, T, C), then @ w_o.T + b_o."),
    guards=("attnflex_lab.modules:MultiHeadAttention.forward", "attnflex_lab.functional:attention",
            "attnflex_lab.ops:attention"),
    atol=1e-5,
))


class _Block(TransformerBlock):
    """A TransformerBlock with a one-line repr, so the check's message stays readable."""

    def __repr__(self) -> str:
        return f"TransformerBlock(C={self.attn.n_heads * self.attn.d_head}, H={self.attn.n_heads})"


def pre_ln_block(x, block, mask=None):
    """x (B, T, C) through a pre-LN block: x + attn(LN1(x)), then + mlp(LN2(·)), from its parts."""
    x = x + block.attn(block.ln1(x), mask)     # (B, T, C): normalise, attend, add back
    return x + block.mlp(block.ln2(x))         # (B, T, C): normalise the *updated* stream, MLP, add


def _block_inputs(gen: torch.Generator):
    n_heads = int(torch.randint(1, 4, (1,), generator=gen))
    C = n_heads * int(torch.randint(2, 5, (1,), generator=gen))
    block = _Block(C, n_heads, backend="functional").eval()
    with torch.no_grad():
        for p in block.parameters():  # random values everywhere, LayerNorm's scale and shift included
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(max(p.shape[-1], 1)) + (p.dim() == 1) * 0.5)
    T = int(torch.randint(2, 7, (1,), generator=gen))
    return torch.randn(2, T, C, generator=gen), block, causal_mask(T)


register(Exercise(
    id="05.pre_ln_block",
    prompt="Write pre_ln_block(x, block, mask) from block.ln1, block.attn, block.ln2, block.mlp: "
           "x + attn(LN1(x), mask), then that plus mlp(LN2(that)).",
    solution=pre_ln_block,
    make_inputs=_block_inputs,
    hint="pre-LN normalises the input of each sub-layer, never the residual stream itself: "
         "x = x + block.attn(block.ln1(x), mask); then x + block.mlp(block.ln2(x)) with the updated x.",
    hints=("two sub-layers, each added back to the residual stream x.",
           "pre-LN: the LayerNorm sits on the way *into* each sub-layer, never on the stream itself.",
           "x = x + block.attn(block.ln1(x), mask); return x + block.mlp(block.ln2(x))."),
    guards=("attnflex_lab.modules:TransformerBlock.forward",),
    atol=1e-5,
))


# --- LayerNorm's backward: the one piece of the block whose gradient is not a matmul ------------

def layernorm_backward(x, gamma, grad_out, eps):
    """(dx, dγ, dβ) for y = γ ⊙ x̂ + β, x̂ = (x − μ) / σ over the last dim, σ = √(var + eps).

    With ĝ = γ ⊙ dy: dx = (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ (both means over the last dim);
    dγ = Σ dy ⊙ x̂ and dβ = Σ dy over every dim but the last.
    """
    mean = x.mean(dim=-1, keepdim=True)                                  # μ: (..., 1)
    sigma = (x.var(dim=-1, unbiased=False, keepdim=True) + eps).sqrt()   # σ: (..., 1), the biased variance
    x_hat = (x - mean) / sigma                                           # (..., C)
    g_hat = grad_out * gamma                                             # ĝ = γ ⊙ dy: (..., C)
    grad_x = (g_hat - g_hat.mean(-1, keepdim=True)
              - x_hat * (g_hat * x_hat).mean(-1, keepdim=True)) / sigma  # (..., C)
    rows = tuple(range(x.dim() - 1))                                     # every dim but the last
    return grad_x, (grad_out * x_hat).sum(rows), grad_out.sum(rows)      # (..., C), (C,), (C,)


def _layernorm_inputs(gen: torch.Generator):
    C = int(torch.randint(2, 9, (1,), generator=gen))
    x = 3 * torch.randn(2, 5, C, generator=gen, dtype=torch.float64) + 1      # (B, T, C), not centred
    gamma = torch.randn(C, generator=gen, dtype=torch.float64)                # (C,)
    grad_out = torch.randn(2, 5, C, generator=gen, dtype=torch.float64)       # (B, T, C), random upstream
    eps = float(torch.empty(1, dtype=torch.float64).uniform_(1e-5, 0.5, generator=gen))  # large enough to matter
    return x, gamma, grad_out, eps


register(Exercise(
    id="05.layernorm_backward",
    prompt="Derive and write layernorm_backward(x, gamma, grad_out, eps) -> (dx, dgamma, dbeta) for "
           "y = gamma * (x - mean) / sqrt(var + eps) + beta over the last dim (var biased), "
           "given grad_out = dL/dy. Autograd is off in the check.",
    solution=layernorm_backward,
    make_inputs=_layernorm_inputs,
    hint="with x̂ the normalised input, σ = √(var + eps) and ĝ = γ ⊙ dy: "
         "dx = (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ, means over the last dim; dγ = Σ dy ⊙ x̂, dβ = Σ dy.",
    hints=("dβ and dγ first: y = γ ⊙ x̂ + β, so sum dy (and dy ⊙ x̂) over every dim but the last.",
           "for dx, x̂ depends on x three ways: directly, through μ and through σ. "
           "Use ∂μ/∂x_j = 1/C and ∂σ/∂x_j = x̂_j / C.",
           "with ĝ = γ ⊙ dy: dx = (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ, means over the last dim."),
    no_autograd=True,
    atol=1e-10, rtol=1e-8,
))


# --- the training loop: the learner trains their own TinyGPT with it ---------------------------------

def train_loop(model, get_batch, steps, lr):
    """AdamW on next-token cross-entropy for ``steps`` steps; returns every step's loss (floats)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(run_steps(steps)):
        ids, targets = get_batch()                                         # (B, T), (B, T)
        logits = model(ids)                                                # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())    # mean over the B·T positions
        optimizer.zero_grad(set_to_none=True)                              # else gradients add up across steps
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _loop_inputs(gen: torch.Generator):
    V, T = 8, 6
    stream = (3 * torch.arange(400) + 1) % V       # (N,): the next token is a function of this one
    model = torch.nn.Embedding(V, V)               # a bigram model: ids (B, T) -> logits (B, T, V)
    with torch.no_grad():
        model.weight.copy_(torch.randn(V, V, generator=gen))
    batch_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))

    def get_batch():
        starts = torch.randint(0, len(stream) - T - 1, (16,), generator=batch_gen)   # (B,)
        idx = starts[:, None] + torch.arange(T)                                      # (B, T)
        return stream[idx], stream[idx + 1]                                          # inputs, next tokens
    return model, get_batch, 40, 0.1


def _compare_losses(got, expected) -> str | None:
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        return f"return the list of the {len(expected)} step losses, got {_describe(got)}"
    if not all(isinstance(v, float) and math.isfinite(v) for v in got):
        return "every loss should be a finite Python float (loss.item()), not a tensor that keeps its graph"
    if abs(got[0] - expected[0]) > 1.0:
        return (f"the first loss is {got[0]:.3f} but an untrained model gives about {expected[0]:.3f}: "
                "is it the cross-entropy of the logits against the next tokens?")
    if sum(got[-5:]) / 5 > 0.5 * got[0]:
        return (f"the loss went from {got[0]:.3f} to {sum(got[-5:]) / 5:.3f} (mean of the last 5): it should fall "
                "by half or more. Is optimizer.step() called, and zero_grad() before each backward?")
    return None


register(Exercise(
    id="05.training_loop",
    prompt="Write train_loop(model, get_batch, steps, lr): AdamW, and per step a batch, the logits, the "
           "next-token cross-entropy, zero_grad, backward, step; return the list of losses.",
    solution=train_loop,
    reference=lambda model, get_batch, steps, lr: train_loop(copy.deepcopy(model), get_batch, steps, lr),
    make_inputs=_loop_inputs,
    compare=_compare_losses,
    hint="cross_entropy wants (N, V) logits and (N,) targets: flatten (B, T, V) -> (B·T, V); call "
         "optimizer.zero_grad() before loss.backward(), then optimizer.step(); append loss.item().",
    hints=("five lines inside the loop: a batch, a forward pass, a loss, a backward pass, an update.",
           "F.cross_entropy(logits.flatten(0, 1), targets.flatten()): it wants (N, V) logits and (N,) targets.",
           "optimizer = torch.optim.AdamW(model.parameters(), lr=lr) once, before the loop; per step "
           "zero_grad(), loss.backward(), step(), and losses.append(loss.item())."),
    guards=("attnflex_lab.training.train:fit",),
    trials=2,
))
