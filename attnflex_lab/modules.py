"""Transformer building blocks with named hook points where the attention maps can be read.

Dimension legend (lesson 00's table): B batch, H heads, T queries, S keys, D head width (written
``Dh`` in code and shape comments), C model width (= H · D).

``MultiHeadAttention`` runs one of three interchangeable backends that compute the same values:

- ``"functional"``: the reference math (``functional.scaled_dot_scores`` + ``masked_softmax``), autograd only;
- ``"ops"``:        the hand-derived backward from ``attnflex_lab.ops`` (lesson 02);
- ``"sdpa"``:       ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels, fastest).

``MultiHeadAttention(x, mask, kv=memory)`` is cross-attention (queries from x, keys and values from
``memory``), the piece ``DecoderBlock`` adds to an encoder–decoder. ``past_kv=`` (a ``LayerKV``, one
layer of a ``kv_cache.KVCache``) makes it incremental: the new tokens' keys and values are appended to the
cached ones and the queries attend to all of them, so a decoder runs only its new tokens per step.
This is the model's one attention forward: generation (``kv_cache.generate_greedy``), prefix tuning,
adapters and every backend go through it. ``attention_fn=`` swaps in another kernel
``(q, k, v) -> out`` (sliding-window or linear attention, lesson 07) on the same weights.
Positional encodings (sinusoidal, learned, RoPE) live in ``attnflex_lab.positional`` and are
re-exported here.

Hook points (``HookPoint``) are identity modules, declared with the shape of what passes through
them, TransformerLens style: ``hook_scores`` and ``hook_pattern`` (B, H, T, S), ``hook_z`` (B, H, T, Dh)
(each head's output before the heads are concatenated and projected: where ``interp`` ablates and
patches heads), ``hook_out`` (B, T, C); a block's ``hook_resid_pre`` / ``hook_resid_post`` (B, T, C).
``run_with_cache(model, x)`` attaches to every one and returns what
went through, by name ("blocks.0.attn.hook_pattern", ...). With the ``sdpa`` and ``ops`` backends
the scores and pattern are not needed for the output, so they are recomputed (without gradient)
only while something listens to their hook: fast training pays nothing for them. Only the
``functional`` backend routes its computation *through* the hooks, so a hook that edits the
pattern changes the output there and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from . import functional
from ._validate import check_floating, check_mask, check_tensor

if TYPE_CHECKING:
    from .kernels.kv_cache import LayerKV

# The positional encodings live in ``positional``; they stay importable from here, where the lessons
# and the models have always found them.
from .positional import (  # noqa: F401
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    positional_encoding,
    rope,
)

BACKENDS = ("functional", "ops", "sdpa")


class HookPoint(nn.Module):
    """An identity layer with a name and a declared shape: a place where activations can be read."""

    def __init__(self, shape: str):
        super().__init__()
        self.shape = shape  # e.g. "(B, H, T, S)"; documents what run_with_cache returns here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def listened_to(self) -> bool:
        """True while a forward hook (e.g. from run_with_cache) is attached."""
        return bool(self._forward_hooks)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


# --- masks: True = may attend --------------------------------------------------------------------

def causal_mask(T: int, S: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, S) bool mask, query i may attend to keys j ≤ i (+ S - T when keys run ahead of queries)."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)  # (T, S)


def padding_mask(lengths: torch.Tensor, S: int) -> torch.Tensor:
    """(B, 1, 1, S) bool mask from the true lengths (B,): keys at positions ≥ length are padding."""
    check_tensor("lengths", lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    if (lengths < 1).any() or (lengths > S).any():
        raise ValueError(f"every length must be in 1..S={S}, got {lengths.tolist()}")
    positions = torch.arange(S, device=lengths.device)          # (S,)
    keep = positions.unsqueeze(0) < lengths.unsqueeze(1)        # (1, S) < (B, 1) -> (B, S)
    return keep[:, None, None, :]                               # (B, 1, 1, S): broadcasts over H and T


# --- attention ---------------------------------------------------------------------------------------

class MultiHeadAttention(nn.Module):
    """Self-attention (or cross-attention, with ``kv=``) with H heads of width Dh = C / H, and a choice
    of backend (see module docstring)."""

    def __init__(self, d_model: int, n_heads: int, *, backend: str = "sdpa", bias: bool = True,
                 attn_dropout: float = 0.0, cross: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
        if not 0.0 <= attn_dropout < 1.0:
            raise ValueError(f"attn_dropout must be in [0, 1), got {attn_dropout!r}")
        if attn_dropout and backend == "ops":
            raise ValueError("attn_dropout needs the 'sdpa' or 'functional' backend: the 'ops' backward "
                             "(lesson 02) is derived for attention without dropout")
        self.n_heads, self.d_head, self.backend = n_heads, d_model // n_heads, backend
        self.cross = cross  # a label: this layer reads another sequence (a decoder's cross-attention)
        # dropout on the attention weights (Vaswani et al. 2017): in training a query forgets some keys
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)  # the three projections in one matmul
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.hook_scores = HookPoint("(B, H, T, S)")   # scaled q·k, before the mask and softmax
        self.hook_pattern = HookPoint("(B, H, T, S)")  # attention weights, rows sum to 1
        self.hook_z = HookPoint("(B, H, T, Dh)")       # each head's output, before concat and projection
        self.hook_out = HookPoint("(B, T, C)")         # the layer's output, after the projection
        # Prefix tuning (lesson 10, ``attnflex_lab.adapt``) sets a module here that maps the projected
        # (k, v, mask) to longer ones with learned keys and values in front; None costs nothing.
        self.kv_prefix: nn.Module | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *, causal: bool = False,
                kv: torch.Tensor | None = None, past_kv: LayerKV | None = None,
                attention_fn: Callable | None = None) -> torch.Tensor:
        """x (B, T, C); mask bool, broadcastable to (B, H, T, S), True = may attend; causal adds j ≤ i
        (aligned at the bottom right: the T queries are the last T of the S positions).

        ``kv`` (B, S, C) makes it **cross**-attention: queries from x, keys and values from kv (an
        encoder's output), with the same weights W_Q (for x) and W_K, W_V (for kv).
        ``past_kv``: this layer's ``LayerKV``; x holds the new positions only, their keys and values
        are appended to it and the queries attend to every cached position as well.
        ``attention_fn(q, k, v) -> out`` (B, H, ·, Dh) replaces the backend's kernel; it does its own
        masking (``kv_cache.causal_sdpa`` is causal), so ``mask`` must then be None.
        """
        check_floating(x=x)
        C = self.n_heads * self.d_head
        if x.dim() != 3 or x.shape[-1] != C:
            raise ValueError(f"x must have shape (B, T, C={C}), got {tuple(x.shape)}")
        if attention_fn is not None and mask is not None:
            raise ValueError("attention_fn does its own masking: pass mask=None with it")
        B, T, _ = x.shape
        if kv is None:
            q, k, v = self.qkv(x).split(C, dim=-1)  # (B, T, 3C) -> 3 × (B, T, C)
        else:
            check_floating(kv=kv)
            if kv.dim() != 3 or kv.shape[0] != B or kv.shape[-1] != C:
                raise ValueError(f"kv must have shape (B={B}, S, C={C}), got {tuple(kv.shape)}")
            if past_kv is not None:
                raise ValueError("past_kv caches self-attention; cross-attention's keys (the encoder's "
                                 "output) do not grow, so pass the same kv each step instead")
            w_q, w_kv = self.qkv.weight.split((C, 2 * C))                  # (C, C), (2C, C)
            b_q, b_kv = (None, None) if self.qkv.bias is None else self.qkv.bias.split((C, 2 * C))
            q = F.linear(x, w_q, b_q)                                      # (B, T, C)
            k, v = F.linear(kv, w_kv, b_kv).split(C, dim=-1)               # (B, S, 2C) -> 2 × (B, S, C)
        if past_kv is not None:
            k, v = past_kv.extend(k, v)                                    # (B, S_past + T, C) each
        S = k.shape[1]
        check_mask(mask, torch.Size((B, self.n_heads, T, S)), x.device, what="attention weights (B, H, T, S)")
        if self.kv_prefix is not None:
            k, v, mask = self.kv_prefix(k, v, mask)  # (B, P + S, C) each; mask (..., P + S)
            S = k.shape[1]
        q = q.view(B, T, self.n_heads, self.d_head).transpose(1, 2)                                # (B, H, T, Dh)
        k, v = (t.view(B, S, self.n_heads, self.d_head).transpose(1, 2) for t in (k, v))           # (B, H, S, Dh)
        causal = causal and T > 1  # one query, last in line, may see every key: no mask needed
        full_mask = _combine(mask, causal_mask(T, S, device=x.device) if causal else None)
        if attention_fn is not None:
            out = attention_fn(q, k, v)                                    # (B, H, T, Dh)
        elif self.backend == "functional":
            out = self._functional(q, k, v, full_mask)
        elif self.backend == "ops":
            out = self._ops(q, k, v, full_mask)
        else:
            out = self._sdpa(q, k, v, mask, causal, full_mask)
        out = self.hook_z(out)                      # (B, H, T, Dh): each head's output, read or edited here
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, H, T, Dh) -> (B, T, H, Dh) -> (B, T, C)
        return self.hook_out(self.proj(out))        # (B, T, C)

    def _functional(self, q, k, v, mask):
        scores = self.hook_scores(functional.scaled_dot_scores(q, k))  # (B, H, T, Dh) @ (B, H, Dh, S) -> (B, H, T, S)
        pattern = self.hook_pattern(functional.masked_softmax(scores, _expand(mask, scores)))  # (B, H, T, S)
        if self.attn_dropout and self.training:  # the hook saw the undropped map
            pattern = F.dropout(pattern, self.attn_dropout)
        return pattern @ v                                              # (B, H, T, S) @ (B, H, S, Dh) -> (B, H, T, Dh)

    def _ops(self, q, k, v, mask):
        from . import ops  # lesson 02's hand-derived backward; imported late so modules loads without it

        out, pattern = ops.attention(q, k, v, mask=mask)  # (B, H, T, Dh), (B, H, T, S)
        if self.hook_scores.listened_to:
            with torch.no_grad():
                self.hook_scores(functional.scaled_dot_scores(q, k))
        if self.hook_pattern.listened_to:
            self.hook_pattern(pattern.detach())
        return out

    def _sdpa(self, q, k, v, mask, causal, full_mask):
        p = self.attn_dropout if self.training else 0.0
        if mask is None and causal and q.shape[-2] == k.shape[-2]:  # fused fast path for a plain causal mask
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        elif full_mask is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, T, Dh)
        else:
            out = _sdpa_masked(q, k, v, full_mask, p)      # (B, H, T, Dh)
        if self.hook_scores.listened_to or self.hook_pattern.listened_to:
            with torch.no_grad():  # recomputed only because someone asked for the maps
                scores = self.hook_scores(functional.scaled_dot_scores(q, k))
                self.hook_pattern(functional.masked_softmax(scores, _expand(full_mask, scores)))
        return out


def _sdpa_masked(q, k, v, mask, dropout_p: float = 0.0):
    """SDPA with a bool mask, giving zeros (and zero gradients) for queries that may attend nowhere.

    Fully masked rows are NaN on older torch builds and some CUDA kernels (zeros on others), and a
    NaN inside the kernel poisons the backward even if the output is zeroed afterwards (0 · NaN =
    NaN). So such a row attends to every key inside the kernel (finite, harmless values) and is set
    to zero after: the same zeros as ``functional.masked_softmax``, with no data-dependent branch.
    """
    has_key = mask.any(dim=-1, keepdim=True)            # (..., T, 1): may this query attend at all?
    safe_mask = mask | ~has_key                         # (..., T, S): empty rows see every key
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe_mask, dropout_p=dropout_p)  # (B, H, T, Dh)
    return out.masked_fill(~has_key, 0.0)               # (B, H, T, Dh): empty rows -> 0, grad 0


def _combine(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    return a & b  # both must allow the pair


def _expand(mask: torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor | None:
    return None if mask is None else mask.expand_as(scores)


# --- the transformer block (pre-LN by default, post-LN on request) ------------------------------------

class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> C with GELU."""

    def __init__(self, d_model: int, hidden_mult: int = 4, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.up = nn.Linear(d_model, hidden_mult * d_model, bias=bias)
        self.down = nn.Linear(hidden_mult * d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.gelu(self.up(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class TransformerBlock(nn.Module):
    """Pre-LN block: x + attn(LN(x)), then x + mlp(LN(x)). LayerNorm first keeps the residual path clean.

    ``norm_first=False`` gives the original post-LN block of Vaswani et al. (2017):
    LN(x + attn(x)), then LN(x + mlp(x)). Every gradient then passes through the norms, and Xiong et
    al. (2020) show why it needs a learning-rate warm-up where the pre-LN block does not (lesson 09).
    ``dropout`` acts on the residual branches; ``attn_dropout`` on the attention weights.
    """

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.0, backend: str = "sdpa",
                 bias: bool = True, norm_first: bool = True, attn_dropout: float = 0.0):
        super().__init__()
        self.norm_first = norm_first
        self.ln1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = MultiHeadAttention(d_model, n_heads, backend=backend, bias=bias,
                                       attn_dropout=attn_dropout)
        self.ln2 = nn.LayerNorm(d_model, bias=bias)
        self.mlp = MLP(d_model, dropout=dropout, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.hook_resid_pre = HookPoint("(B, T, C)")   # the residual stream entering the block
        self.hook_resid_post = HookPoint("(B, T, C)")  # and leaving it

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *, causal: bool = False,
                **attn_kwargs) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). ``attn_kwargs`` (``past_kv``, ``attention_fn``) go to the attention."""
        x = self.hook_resid_pre(x)                                             # (B, T, C)
        if not self.norm_first:                                                # post-LN
            x = self.ln1(x + self.dropout(self.attn(x, mask, causal=causal, **attn_kwargs)))  # (B, T, C)
            return self.hook_resid_post(self.ln2(x + self.mlp(x)))             # (B, T, C)
        x = x + self.dropout(self.attn(self.ln1(x), mask, causal=causal, **attn_kwargs))  # (B, T, C)
        return self.hook_resid_post(x + self.mlp(self.ln2(x)))                 # (B, T, C)


class DecoderBlock(nn.Module):
    """Pre-LN decoder block (Vaswani et al. 2017's decoder, normalised first): causal self-attention,
    then cross-attention to the encoder's output ``memory``, then the MLP, each in a residual."""

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.0, backend: str = "sdpa"):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, backend=backend)
        self.ln2 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, backend=backend, cross=True)
        self.ln3 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, dropout=dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """x (B, T, C) target side; memory (B, S, C); memory_mask (B, 1, 1, S), True = a real source key."""
        x = x + self.self_attn(self.ln1(x), causal=True)                       # (B, T, C): the prefix so far
        x = x + self.cross_attn(self.ln2(x), memory_mask, kv=memory)           # (B, T, C): read the source
        return x + self.mlp(self.ln3(x))                                       # (B, T, C)


def set_backend(model: nn.Module, backend: str) -> nn.Module:
    """Switch every MultiHeadAttention in ``model`` to ``backend`` (the weights stay the same)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.backend = backend
    return model


# --- reading the hooks ------------------------------------------------------------------------------

class ActivationCache(dict):
    """Activations by hook name; ``patterns()`` stacks the attention maps of every layer."""

    def patterns(self) -> torch.Tensor:
        """(L, B, H, T, S): every ``hook_pattern`` in layer order."""
        maps = [v for k, v in self.items() if k.endswith("hook_pattern")]
        if not maps:
            raise KeyError("no hook_pattern in this cache; run run_with_cache without a names filter")
        return torch.stack(maps)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Every HookPoint in ``model`` by its dotted name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}


@contextmanager
def caching(model: nn.Module, names=None):
    """Within the block, what passes through the chosen hook points lands in the yielded cache."""
    points = hook_points(model)
    chosen = points if names is None else {n: p for n, p in points.items() if _wanted(n, names)}
    if names is not None and not chosen:
        raise ValueError(f"no hook point matches {names!r}; the model has {list(points)[:6]} ...")
    cache = ActivationCache()
    handles = [p.register_forward_hook(_recorder(cache, n)) for n, p in chosen.items()]
    try:
        yield cache
    finally:
        for handle in handles:
            handle.remove()


def run_with_cache(model: nn.Module, *args, names=None, **kwargs):
    """Run ``model(*args, **kwargs)`` and return ``(output, cache)``; ``names`` filters hooks by substring."""
    with caching(model, names) as cache:
        output = model(*args, **kwargs)
    return output, cache


def _wanted(name: str, names) -> bool:
    names = [names] if isinstance(names, str) else names
    return any(part in name for part in names)


def _recorder(cache: ActivationCache, name: str):
    def hook(module, inputs, output):
        cache[name] = output.detach()
    return hook
