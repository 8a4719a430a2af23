"""``python -m attnflex_lab train --task NAME``: train a registered recipe from the command line.

The progress bar goes to stderr; stdout gets exactly one JSON line of final metrics, e.g.::

    {"task": "digits", "profile": "cpu", "seed": 0, "test_accuracy": 0.983, "final_loss": 0.02,
     "steps": 1500, "seconds": 9.1, "weights_sha256": "...", "trainable_params": 12345}

``--init-from CHECKPOINT`` starts from trained weights and ``--peft lora|adapter|prefix`` trains only
the parameters that method adds (lesson 10); ``trainable_params`` counts what was trained.

Under ``torchrun`` (WORLD_SIZE > 1) the process group is set up here, every rank trains its slice
of each global batch, and only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..cli_errors import OneLineParser, UsageError, int_in_range
from ..profiles import PROFILES


def _parser(task_names: list[str]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m attnflex_lab train",
                                     description="Train a lab recipe and print its final metrics "
                                                 "as one JSON line on stdout.")
    parser.add_argument("--task", required=True, choices=task_names, help="the recipe to train")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="run size (default: ATTNFLEX_PROFILE, else gpu with CUDA, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, init and batches")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    parser.add_argument("--checkpoint-dir", default=None, help="write step_*.pt checkpoints here")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="steps between checkpoints (0 = only at the end)")
    parser.add_argument("--resume", default=None,
                        help="a checkpoint file, or a directory (its newest), to go on from")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the checkpoints already in --checkpoint-dir before a fresh run "
                             "(without it, such a folder is refused)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (1 is fastest for these small models on a "
                             "busy machine)")
    parser.add_argument("--log-dir", default=None,
                        help="write steps.csv, evals.csv and TensorBoard event files (if tensorboard "
                             "is installed) here; `tensorboard --logdir DIR` shows them")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--debug", action="store_true", help="print a traceback with an error")
    _add_adaptation_flags(parser)
    return parser


def _add_adaptation_flags(parser: argparse.ArgumentParser) -> None:
    """Lesson 10: start from trained weights and fine-tune only a few new parameters."""
    from ..adapt import PEFT_METHODS

    group = parser.add_argument_group("adaptation (lesson 10)")
    group.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                       help="start from the model weights of this checkpoint (a file, or a directory: "
                            "its newest), e.g. one another train run wrote")
    group.add_argument("--peft", choices=PEFT_METHODS, default=None,
                       help="freeze the model and train only LoRA (q, v), adapters or K/V prefixes")
    group.add_argument("--lora-rank", type=int, default=None, help="LoRA rank r (default 4)")
    group.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default 8)")
    group.add_argument("--adapter-size", type=int, default=None, help="adapter bottleneck width (default 8)")
    group.add_argument("--prefix-length", type=int, default=None, help="prefix positions per layer (default 4)")


_METHOD_FLAGS = {"lora_rank": "lora", "lora_alpha": "lora", "adapter_size": "adapter",
                 "prefix_length": "prefix"}


def _peft_config(args, parser):
    """The config of ``--peft``'s method from its flags; a flag of another method is an error."""
    from .. import adapt

    for key, method in _METHOD_FLAGS.items():
        if getattr(args, key) is not None and args.peft != method:
            parser.error(f"--{key.replace('_', '-')} needs --peft {method}")
    given = {"lora": {"rank": args.lora_rank, "alpha": args.lora_alpha},
             "adapter": {"size": args.adapter_size},
             "prefix": {"length": args.prefix_length}}.get(args.peft, {})
    make = {"lora": adapt.LoRAConfig, "adapter": adapt.AdapterConfig, "prefix": adapt.PrefixConfig}
    try:
        return make[args.peft](**{k: v for k, v in given.items() if v is not None}) if args.peft else None
    except ValueError as err:
        parser.error(str(err))


def _model_preparer(args, cfg, init_state: dict | None):
    """model -> None: load --init-from's weights (read and checked before training), then add
    --peft's parameters."""
    from .. import adapt

    def prepare(model):
        if init_state is not None:
            try:
                model.load_state_dict(init_state)
            except RuntimeError as err:
                raise UsageError(f"--init-from {args.init_from}: its weights do not fit this "
                                 f"recipe's model (another task or profile?): "
                                 f"{str(err).strip().splitlines()[0]}") from None
        if args.peft is not None:
            try:
                adapt.prepare(model, args.peft, cfg)
            except ValueError as err:
                raise UsageError(f"--peft {args.peft}: {err}") from None
    return prepare


MAX_STEPS = 10**9
MAX_SEED = 2**32 - 1          # numpy's seeds stop here


def _check_numbers(args) -> None:
    int_in_range("--steps", args.steps, 1, MAX_STEPS)
    int_in_range("--checkpoint-every", args.checkpoint_every, 0, MAX_STEPS)
    int_in_range("--seed", args.seed, 0, MAX_SEED)
    int_in_range("--threads", args.threads, 1, 1024)


def _check_device(name: str | None) -> None:
    """--device names a device torch knows and this machine has."""
    if name is None:
        return
    import torch

    accepted = "accepted: cpu, cuda, cuda:N, mps"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r} is not a device ({accepted})") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {name}: CUDA is not available on this machine (use cpu)")
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {name}: this machine has cuda:0..cuda:{count - 1}")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError(f"--device {name}: MPS is not available on this machine (use cpu)")
    elif device.type != "cpu":
        raise UsageError(f"--device {name!r} is not a device ({accepted})")


def _profile_name(args) -> str:
    from ..profiles import PROFILE_ENV, profile

    if args.profile is not None:
        return args.profile
    try:
        return profile()
    except ValueError:
        raise UsageError(f"{PROFILE_ENV}={os.environ.get(PROFILE_ENV)!r} is not a profile; set it to "
                         f"one of {', '.join(PROFILES)}, unset it, or pass --profile") from None


def _read_checkpoint(flag: str, path: str) -> dict:
    """A checkpoint for --resume or --init-from, read before any training; its faults as one line."""
    from .checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path)
    except (CheckpointError, OSError) as err:
        raise UsageError(f"{flag} {path}: {err}") from None


def _check_resume_recipe(path: str, ckpt: dict, recipe: str) -> None:
    """--resume goes on from a checkpoint of this recipe and profile, never another's."""
    saved = str(ckpt.get("config", {}).get("recipe") or "")
    if saved and saved != recipe:
        task, prof = saved.split("/", 1) if "/" in saved else (saved, "?")
        raise UsageError(f"--resume {path}: it was written by a {saved} run, not {recipe}; pass "
                         f"--task {task} --profile {prof} to go on with it, or start a fresh run")


def _check_output_folders(args, rank: int) -> None:
    from .checkpoint import check_fresh_directory
    from .folders import CheckpointDirError, check_not_in_use, check_writable

    try:
        for flag, folder in (("--checkpoint-dir", args.checkpoint_dir), ("--log-dir", args.log_dir)):
            if folder is not None and rank == 0:
                check_writable(folder, flag)
        if args.checkpoint_dir and rank == 0:   # fit holds the lock for the run; a folder in use
            check_not_in_use(args.checkpoint_dir)  # fails now, before the data and the model are built
        if args.checkpoint_dir and args.resume is None and not args.overwrite:
            check_fresh_directory(args.checkpoint_dir)   # before the data and the model are built
    except CheckpointDirError as err:
        raise UsageError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    from .. import recipes

    parser = _parser(recipes.names())
    args = parser.parse_args(argv)
    if args.overwrite and args.resume is not None:
        parser.error("--overwrite deletes the checkpoints that --resume would go on from; use one")
    if args.overwrite and args.checkpoint_dir is None:
        parser.error("--overwrite needs --checkpoint-dir (the folder to clear)")
    _check_numbers(args)
    peft_cfg = _peft_config(args, parser)
    profile_name = _profile_name(args)
    _check_device(args.device)
    rank = int(os.environ.get("RANK", "0"))             # torchrun's; 0 outside it
    _check_output_folders(args, rank)
    if args.resume is not None:
        _check_resume_recipe(args.resume, _read_checkpoint("--resume", args.resume),
                             f"{args.task}/{profile_name}")
    init_state = _read_checkpoint("--init-from", args.init_from)["model"] if args.init_from else None
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    overrides = {"progress": not args.no_progress}
    for key in ("steps", "checkpoint_dir", "checkpoint_every", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    from . import distributed
    from .tracking import log_dir_callbacks

    log_callbacks = log_dir_callbacks(args.log_dir) if args.log_dir else []  # rank 0 writes
    # Under torchrun: join the group (gloo for --device cpu or without CUDA, NCCL on GPUs) and
    # train on this rank's own GPU. Outside torchrun this only reports rank 0 of 1.
    with distributed.distributed_session(device=args.device) as info:
        if info.world_size > 1:
            overrides["device"] = str(info.device)
        metrics, run, _ = recipes.train_recipe(args.task, profile_name=profile_name,
                                               seed=args.seed, resume=args.resume,
                                               overwrite=args.overwrite, callbacks=log_callbacks,
                                               prepare_model=_model_preparer(args, peft_cfg, init_state),
                                               **overrides)
    if info.rank == 0:
        from ..adapt import trainable_parameters

        line = {"task": args.task, "profile": profile_name, "seed": args.seed,
                **metrics, "trainable_params": trainable_parameters(run.model)}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    return 0
