"""`python -m attnflex_lab train --init-from CKPT --peft lora|adapter|prefix`: the base stays as loaded,
only the method's parameters train, and the JSON line counts them."""

import json

import pytest
import torch

from attnflex_lab.training import cli as cli_train
from attnflex_lab.training.checkpoint import load_checkpoint

from .single_thread import one_thread_per_module  # noqa: F401 (autouse: one torch thread)

FAST = ["--task", "reverse", "--profile", "smoke", "--threads", "1", "--no-progress"]
C, L = 32, 2  # the reverse recipe's smoke model: width and layers


def _train(capsys, *args) -> dict:
    assert cli_train.main([*FAST, *args]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    assert cli_train.main([*FAST, "--steps", "20", "--checkpoint-dir", str(folder)]) == 0
    return folder


def _base_weights(state: dict) -> dict:
    """The base model's tensors of a (possibly adapted) state dict, under the base model's names."""
    renamed = {k.replace(".qkv.base.", ".qkv.").replace(".sublayer.", "."): v for k, v in state.items()}
    return {k: v for k, v in renamed.items() if not any(s in k for s in ("lora_", "adapter", "kv_prefix"))}


@pytest.mark.parametrize("flags, trainable", [
    (["--peft", "lora", "--lora-rank", "2"], L * 2 * (2 * C + C * 2)),          # q, v: A (2, C), B (C, 2)
    (["--peft", "adapter", "--adapter-size", "4"], L * 2 * (C * 4 + 4 + 4 * C + C)),  # attn + mlp, down + up
    (["--peft", "prefix", "--prefix-length", "3"], L * 2 * 3 * C),              # keys and values (3, C)
])
def test_peft_from_a_checkpoint_trains_only_the_new_parameters(capsys, tmp_path, base_checkpoint,
                                                                 flags, trainable):
    capsys.readouterr()
    out = tmp_path / "adapted"
    line = _train(capsys, "--steps", "4", "--init-from", str(base_checkpoint), *flags,
                  "--checkpoint-dir", str(out))
    assert line["trainable_params"] == trainable and line["steps"] == 4
    base, adapted = load_checkpoint(base_checkpoint)["model"], load_checkpoint(out)["model"]
    kept = _base_weights(adapted)
    assert kept.keys() == base.keys()
    for name, tensor in base.items():  # loaded from the checkpoint, then frozen: not one bit moved
        assert torch.equal(kept[name], tensor), name
    assert len(adapted) > len(base)


def test_full_training_reports_every_parameter_and_init_from_loads_the_weights(capsys, base_checkpoint):
    capsys.readouterr()
    line = _train(capsys, "--steps", "1")
    expected = sum(t.numel() for t in load_checkpoint(base_checkpoint)["model"].values())
    assert line["trainable_params"] == expected
    fresh = _train(capsys, "--steps", "1", "--init-from", str(base_checkpoint))
    assert fresh["test_token_accuracy"] > line["test_token_accuracy"]  # 20 trained steps beat none


def test_bad_adaptation_flags_are_explained(capsys, base_checkpoint):
    from attnflex_lab.__main__ import main

    def error_line(*argv) -> str:
        assert main(["train", *argv]) == 2              # a user error: one line, exit status 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("error: ") and len(err.splitlines()) == 1
        return err

    assert "--lora-rank needs --peft lora" in error_line(*FAST, "--lora-rank", "2")
    assert "LoRA rank must be a positive int" in error_line(*FAST, "--peft", "lora", "--lora-rank", "0")
    assert "exceeds the projection width 32" in error_line(*FAST, "--steps", "1", "--peft", "lora",
                                                           "--lora-rank", "33")
    assert "do not fit this recipe's model" in error_line(
        "--task", "reverse", "--profile", "cpu", "--threads", "1", "--no-progress", "--steps", "1",
        "--init-from", str(base_checkpoint))          # cpu's model is wider
