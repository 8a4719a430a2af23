"""Codecs: how a served recipe turns JSON input into model inputs, and its outputs back into JSON.

One codec class per family of recipes, registered by recipe name (``CODECS``), so the server holds
no per-task branches. A codec is built for a (profile, seed) because a recipe's sizes (and the lm's
character vocabulary) depend on them; ``new_model()`` rebuilds the recipe's network without building
its data, which is how a checkpoint's weights are matched to a recipe (``serve.predictor``).

    codec = codec_for("sort", "smoke", seed=0)
    inputs = codec.encode([3, 1, 2, 0, 5, 4])          # clear InputError on bad input
    codec.predict(model, inputs)                       # {"prediction": ..., "attention": {...}}
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..kernels.kv_cache import generate_greedy
from ..models.classifier import AttentionPoolingClassifier, ClassifierConfig, MeanPoolingClassifier
from ..models.transformer import SequenceEncoder, TinyGPT
from ..models.vit import TinyViT, ViTConfig
from ..modules import run_with_cache
from ..profiles import by_profile
from ..recipes import dates, dates_transformer, digits, lm, sequence
from ..tasks.dates import MAX_SOURCE_LEN, SOURCE_VOCAB, TARGET_VOCAB
from ..tasks.long_dates import MAX_LONG_SOURCE_LEN
from ..tasks.text import CharTokenizer, make_corpus


class InputError(ValueError):
    """Request input a codec cannot encode; the message is meant for the client, ``field`` names
    the request field at fault (the server answers 422 with it)."""

    def __init__(self, message: str, field: str = "input"):
        super().__init__(message)
        self.field = field


def _attention(weights: torch.Tensor, axes: list[str], **labels) -> dict:
    """JSON form of an attention tensor: values rounded to 5 decimals, its shape and axis names."""
    if weights.dim() != len(axes):
        raise ValueError(f"attention of shape {tuple(weights.shape)} does not fit the axes {axes}")
    values = weights.detach().double().cpu().numpy().round(5).tolist()  # float64: 0.05384, not 0.053840000182
    return {"weights": values, "shape": list(weights.shape), "axes": axes, **labels}


def _probabilities(logits: torch.Tensor) -> list[float]:
    return [round(p, 5) for p in logits.float().softmax(-1).tolist()]  # (V,) -> V floats


class Codec:
    """Base: ``profile``/``seed`` of the run, an ``example()`` input, ``encode``, ``predict``."""

    input_doc = ""                     # what "input" is, for error messages and /health

    def __init__(self, recipe: str, profile: str, seed: int = 0):
        self.recipe, self.profile, self.seed = recipe, profile, seed

    def new_model(self) -> nn.Module:
        raise NotImplementedError

    def example(self):
        raise NotImplementedError

    def encode(self, value) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def predict(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], **options) -> dict:
        raise NotImplementedError

    def options(self, request: dict) -> dict:
        """Options a request may carry besides "input"; unknown keys are refused by the server."""
        return {}


# --- images: the digit classifiers and the ViT ----------------------------------------------------

class PixelCodec(Codec):
    """``input``: side×side pixel values in [0, 1], flat (side² numbers) or as side rows."""

    side = 8

    @property
    def input_doc(self) -> str:
        return f"{self.side * self.side} pixel values in [0, 1] (a flat list or {self.side} rows)"

    def example(self):
        return [round((r * self.side + c) % 7 / 6, 3) for r in range(self.side) for c in range(self.side)]

    def encode(self, value) -> tuple[torch.Tensor, ...]:
        if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
            if len(value) != self.side or any(len(row) != self.side for row in value):
                raise InputError(f"input rows must be {self.side}×{self.side}, got {len(value)} rows "
                                 f"of lengths {sorted({len(r) for r in value})}")
            value = [v for row in value for v in row]
        if not isinstance(value, list):
            raise InputError(f"input must be {self.input_doc}, got {type(value).__name__}")
        if len(value) != self.side * self.side:
            raise InputError(f"input must have {self.side * self.side} pixel values, got {len(value)}")
        bad = [i for i, v in enumerate(value)
               if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)]
        if bad:
            raise InputError(f"pixel values must be finite numbers; position {bad[0]} holds "
                             f"{value[bad[0]]!r}")
        outside = [v for v in value if not 0 <= v <= 1]
        if outside:
            raise InputError(f"pixel values must lie in [0, 1] (raw 0..16 ink counts: divide by 16); "
                             f"got {len(outside)} outside, e.g. {outside[0]!r}")
        image = torch.tensor(value, dtype=torch.float32).view(1, 1, self.side, self.side)  # (1, 1, s, s)
        return (image,)


class PoolingCodec(PixelCodec):
    """digits, digits_mean, digits_canvas(_mean): one attention weight per 2×2-pooled region."""

    def __init__(self, recipe: str, profile: str, seed: int = 0):
        super().__init__(recipe, profile, seed)
        self.canvas = recipe.startswith("digits_canvas")
        self.side = digits.CANVAS if self.canvas else 8
        self.model_cls = MeanPoolingClassifier if recipe.endswith("_mean") else AttentionPoolingClassifier

    def new_model(self) -> nn.Module:
        cfg = digits.canvas_config() if self.canvas else ClassifierConfig()
        return self.model_cls(cfg)

    def predict(self, model, inputs, **options) -> dict:
        logits, alpha = model(*inputs)                              # (1, 10), (1, T)
        grid = self.side // 2
        return {"prediction": int(logits[0].argmax()), "probabilities": _probabilities(logits[0]),
                "attention": _attention(alpha[0].view(grid, grid), ["region_row", "region_col"])}


class ViTCodec(PixelCodec):
    """vit: the [CLS] token's attention to each 2×2 patch, per layer and head."""

    def new_model(self) -> nn.Module:
        return TinyViT(ViTConfig(d_model=by_profile(smoke=32, cpu=64, gpu=128, profile_name=self.profile),
                                 n_layers=by_profile(smoke=2, cpu=3, gpu=4, profile_name=self.profile)))

    def predict(self, model, inputs, **options) -> dict:
        logits, cache = run_with_cache(model, *inputs, names="hook_pattern")  # (1, 10)
        maps = cache.patterns()[:, 0]                               # (L, 1, H, 1+P, 1+P) -> (L, H, 1+P, 1+P)
        grid = int(round((maps.shape[-1] - 1) ** 0.5))
        cls_row = maps[:, :, 0, 1:].reshape(*maps.shape[:2], grid, grid)  # (L, H, P) -> (L, H, g, g)
        return {"prediction": int(logits[0].argmax()), "probabilities": _probabilities(logits[0]),
                "attention": _attention(cls_row, ["layer", "head", "patch_row", "patch_col"],
                                        query="[CLS]")}


# --- sequences of digits: sort and reverse --------------------------------------------------------

class DigitSequenceCodec(Codec):
    """sort, reverse: ``input`` is a list of ints 0..9 of the trained length."""

    def __init__(self, recipe: str, profile: str, seed: int = 0):
        super().__init__(recipe, profile, seed)
        self.length = by_profile(smoke=6, cpu=8, gpu=16, profile_name=profile)
        self.input_doc = f"a list of {self.length} integers 0..{sequence.VOCAB - 1}"

    def new_model(self) -> nn.Module:
        return SequenceEncoder(sequence.model_config(self.profile, self.length))

    def example(self):
        return [(7 * i + 3) % sequence.VOCAB for i in range(self.length)]

    def encode(self, value) -> tuple[torch.Tensor, ...]:
        if not isinstance(value, list):
            raise InputError(f"input must be {self.input_doc}, got {type(value).__name__}")
        if len(value) != self.length:
            raise InputError(f"input must have exactly {self.length} digits (the length the model was "
                             f"trained on), got {len(value)}")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, int):
                raise InputError(f"input[{i}] must be an integer, got {type(v).__name__} {v!r}")
            if not 0 <= v < sequence.VOCAB:
                raise InputError(f"input[{i}] = {v} is outside 0..{sequence.VOCAB - 1}")
        return (torch.tensor([value], dtype=torch.long),)          # (1, T)

    def predict(self, model, inputs, **options) -> dict:
        logits, cache = run_with_cache(model, *inputs, names="hook_pattern")  # (1, T, V)
        maps = cache.patterns()[:, 0]                               # (L, 1, H, T, S) -> (L, H, T, S)
        return {"prediction": logits[0].argmax(-1).tolist(),
                "attention": _attention(maps, ["layer", "head", "output", "input"])}


# --- dates: Bahdanau seq2seq and the transformer encoder–decoder -----------------------------------

class DatesCodec(Codec):
    """dates, dates_long(_noattn), dates_transformer: ``input`` is a date written by a person."""

    def __init__(self, recipe: str, profile: str, seed: int = 0):
        super().__init__(recipe, profile, seed)
        self.max_len = MAX_LONG_SOURCE_LEN if recipe.startswith("dates_long") else MAX_SOURCE_LEN
        self.input_doc = f"a date as text, 1..{self.max_len} characters"

    def new_model(self) -> nn.Module:
        if self.recipe == "dates_transformer":
            return dates_transformer.new_model(self.profile)
        if self.recipe == "dates":
            return dates.new_model()
        return dates.new_long_model(attention=self.recipe == "dates_long")

    def example(self):
        return "3 March 2021" if self.recipe != "dates_long_noattn" else "on 03/04/2021 we met"

    def encode(self, value) -> tuple[torch.Tensor, ...]:
        if not isinstance(value, str):
            raise InputError(f"input must be {self.input_doc}, got {type(value).__name__}")
        if not 1 <= len(value) <= self.max_len:
            raise InputError(f"input must have 1..{self.max_len} characters, got {len(value)}")
        unknown = sorted({c for c in value if c not in SOURCE_VOCAB.stoi})
        if unknown:
            raise InputError(f"input has characters the model does not know: {unknown} "
                             f"(it knows letters, digits, space and , - . /)")
        return (torch.tensor([SOURCE_VOCAB.encode(value, self.max_len)]),)  # (1, S), padded with 0

    def predict(self, model, inputs, **options) -> dict:
        (src,) = inputs
        n_chars = int((src[0] != 0).sum())                          # the real (unpadded) source
        tokens, maps = model.generate(src)                          # (1, T); (1, T, S) or (1, L, H, T, S)
        text = TARGET_VOCAB.decode(tokens[0])
        source = SOURCE_VOCAB.decode(src[0, :n_chars])
        if not getattr(model.cfg, "attention", True):   # dates_long_noattn: the α it returns are zeros
            return {"prediction": text, "attention": None,
                    "note": "this model has no attention: every step reads the last encoder state"}
        if maps.dim() == 3:
            attention = _attention(maps[0, :, :n_chars], ["output", "input"])
        else:
            attention = _attention(maps[0, ..., :n_chars], ["layer", "head", "output", "input"])
        attention.update(output_labels=list(text), input_labels=list(source))
        return {"prediction": text, "attention": attention}


# --- the character language model ------------------------------------------------------------------

class CharLMCodec(Codec):
    """lm: ``input`` is a prompt; ``max_new_tokens`` (default 32) characters follow, greedily."""

    MAX_NEW = 256

    def __init__(self, recipe: str, profile: str, seed: int = 0):
        super().__init__(recipe, profile, seed)
        # the vocabulary is the set of characters of the corpus the recipe trained on
        self.tokenizer = CharTokenizer(make_corpus(lm.corpus_chars(profile), seed))
        self.block_size = lm.GPT_PRESETS[profile]["block_size"]
        self.input_doc = f"a prompt of 1..{self.block_size} characters"

    def new_model(self) -> nn.Module:
        return TinyGPT(lm.gpt_config(self.tokenizer.vocab_size, profile_name=self.profile))

    def example(self):
        return "once upon a time"[: self.block_size]

    def options(self, request: dict) -> dict:
        n_new = request.get("max_new_tokens", 32)
        if isinstance(n_new, bool) or not isinstance(n_new, int) or not 1 <= n_new <= self.MAX_NEW:
            raise InputError(f"max_new_tokens must be an integer in 1..{self.MAX_NEW}, got {n_new!r}",
                             field="max_new_tokens")
        return {"max_new_tokens": n_new}

    def encode(self, value) -> tuple[torch.Tensor, ...]:
        if not isinstance(value, str):
            raise InputError(f"input must be {self.input_doc}, got {type(value).__name__}")
        if not 1 <= len(value) <= self.block_size:
            raise InputError(f"input must have 1..{self.block_size} characters, got {len(value)}")
        unknown = sorted(set(value) - set(self.tokenizer.stoi))
        if unknown:
            raise InputError(f"input has characters outside the model's vocabulary: {unknown}")
        return (self.tokenizer.encode(value)[None],)               # (1, T)

    def predict(self, model, inputs, max_new_tokens: int = 32, **options) -> dict:
        (idx,) = inputs
        _, cache = run_with_cache(model, idx, names="hook_pattern")
        last_row = cache.patterns()[:, 0, :, -1]                    # (L, 1, H, T, T) -> (L, H, T)
        out = _greedy(model, idx, max_new_tokens)                   # (1, T + n)
        return {"prediction": self.tokenizer.decode(out[0, idx.shape[1]:]),
                "attention": _attention(last_row, ["layer", "head", "input"], query="last prompt "
                                        "character", input_labels=list(self.tokenizer.decode(idx[0])))}


def _greedy(model: TinyGPT, idx: torch.Tensor, n_new: int) -> torch.Tensor:
    """Append ``n_new`` argmax tokens to idx (1, T), the context cropped to the block size.

    The KV-cache path (``kv_cache.generate_greedy``) where prompt and answer fit one block; plain
    argmax over the cropped context where they do not. Neither samples, so an answer is the same
    every time and the global random state is left alone (top-k 1 through multinomial drew from it).
    """
    if idx.shape[1] + n_new <= model.cfg.block_size:
        return generate_greedy(model, idx, n_new)
    for _ in range(n_new):
        logits = model(idx[:, -model.cfg.block_size:])[:, -1]      # (1, V)
        idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)  # (1, T + 1)
    return idx


CODECS: dict[str, type[Codec]] = {
    "digits": PoolingCodec, "digits_mean": PoolingCodec,
    "digits_canvas": PoolingCodec, "digits_canvas_mean": PoolingCodec,
    "vit": ViTCodec, "sort": DigitSequenceCodec, "reverse": DigitSequenceCodec,
    "dates": DatesCodec, "dates_long": DatesCodec, "dates_long_noattn": DatesCodec,
    "dates_transformer": DatesCodec, "lm": CharLMCodec,
}


def codec_for(recipe: str, profile: str, seed: int = 0) -> Codec:
    """The codec of a recipe for a profile and seed; KeyError naming the servable recipes."""
    try:
        cls = CODECS[recipe]
    except KeyError:
        raise KeyError(f"recipe {recipe!r} has no serving codec; servable: {sorted(CODECS)}") from None
    return cls(recipe, profile, seed)
