"""Adapting a trained attention model to a new task (lesson 10).

Each method wraps the lab's own modules in place, copying none of them:

    lora      LoRA on the q and v slices of each attention's fused qkv projection  (lora.py)
    adapter   bottleneck adapters after each block's attention and MLP             (adapters.py)
    prefix    learned key/value prefixes in every attention layer                  (prefix.py)

and ``freeze.py`` freezes parts of a model (attention, MLPs, all but the head) and counts what is
left to train. Lesson 10's experiments: ``transfer.py`` (reverse -> rotate, method by method, with
retention and the per-head attention shift), ``sweeps.py`` (every method over seeds and step budgets,
LoRA's rank × targets grid) and ``multitask.py`` (a task token vs separate models). ``prefix.py`` also
holds the prefix identity (``prefix_decomposition``: a gated mix of two attentions, He et al. 2022).
``prepare(model, method)`` freezes and adds parameters for every method lesson 10 compares::

    prepare(model, "lora", LoRAConfig(rank=4))    # base frozen, only A and B train
    prepare(model, "freeze_attention")            # everything but the attention layers trains

Every method starts as the base model (LoRA's B = 0, adapters' up-projections = 0, prefix
length 0), so training starts from what the base model knew.
"""

from __future__ import annotations

from torch import nn

from .adapters import Adapted, AdapterConfig, Bottleneck, add_adapters
from .freeze import PARTS, count_parameters, freeze, part_parameters, trainable_parameters, unfreeze
from .lora import LoRAConfig, LoRAQKV, add_lora, lora_layers, merge_lora, unmerge_lora
from .prefix import KVPrefix, PrefixConfig, add_prefix, prefix_decomposition

PEFT_METHODS = ("lora", "adapter", "prefix")  # new parameters, the base frozen
METHODS = ("full", "linear_probe", "freeze_attention", "freeze_mlp", *PEFT_METHODS)
_CONFIGS = {"lora": LoRAConfig, "adapter": AdapterConfig, "prefix": PrefixConfig}


def prepare(model: nn.Module, method: str, cfg=None, *, train_head: bool = False) -> nn.Module:
    """Make ``model`` ready to fine-tune with ``method`` (one of ``METHODS``), in place.

    full: everything trains. linear_probe: only the output layer. freeze_attention / freeze_mlp:
    all but those layers. lora / adapter / prefix: only the new parameters (and the output layer
    if ``train_head``); ``cfg`` is that method's config (default: its defaults).
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {METHODS}")
    if cfg is not None and not isinstance(cfg, _CONFIGS.get(method, ())):
        wanted = _CONFIGS[method].__name__ if method in _CONFIGS else "None"
        raise TypeError(f"method {method!r} takes a {wanted} config, got {type(cfg).__name__}")
    unfreeze(model)
    if method == "linear_probe":
        freeze(model, "all_but_head")
    elif method == "freeze_attention":
        freeze(model, "attention")
    elif method == "freeze_mlp":
        freeze(model, "mlp")
    elif method in PEFT_METHODS:
        freeze(model, "all_but_head" if train_head else "all")
        {"lora": add_lora, "adapter": add_adapters, "prefix": add_prefix}[method](model, cfg)
    return model


__all__ = ["METHODS", "PARTS", "PEFT_METHODS", "AdapterConfig", "Adapted", "Bottleneck", "KVPrefix",
           "LoRAConfig", "LoRAQKV", "PrefixConfig", "add_adapters", "add_lora", "add_prefix",
           "count_parameters", "freeze", "lora_layers", "merge_lora", "part_parameters", "prepare",
           "prefix_decomposition", "trainable_parameters", "unfreeze", "unmerge_lora"]
