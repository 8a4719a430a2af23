"""The training loop behind ``fit()``: one step, logging, evaluation, checkpoints.

``fit`` (in ``train.py``) checks the config, builds the optimizer and restores a checkpoint;
``TrainingRun.loop()`` then runs the steps. Kept apart so each file reads in one sitting.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict

import torch
import torch.distributed as dist
from torch import nn

from ..perf.flops import synchronize  # the one device sync (perf owns the timer); recipes.lm imports it from here
from ..profiles import run_steps
from .batches import batch_indices, gather, rank_slice, to_device
from .callbacks import TrainState, call_hook
from .checkpoint import rng_state, save_training_checkpoint, set_rng_state
from .config import History, TrainConfig
from .distributed import all_gather_objects
from .evaluation import amp_autocast, evaluate, split_loss
from .live_plot import live_plot_callbacks


class TrainingRun:
    """One training session: the loop and what it needs, so each piece stays short."""

    def __init__(self, cfg, state, train_data, val_data, loss_fn, eval_fn, callbacks, device,
                 scheduler, scaler):
        self.cfg, self.state, self.device = cfg, state, device
        self.train_data, self.val_data = train_data, val_data
        # fit's own callbacks go last: checkpoints key callback state by position
        self.loss_fn, self.eval_fn = loss_fn, eval_fn
        self.callbacks = [*callbacks, *live_plot_callbacks(cfg, state.rank)]
        self.scheduler, self.scaler = scheduler, scaler
        self.train_model = _wrap(state.model, cfg, state.world_size, device)
        self.compile_checked = not cfg.compile

    def loop(self) -> History:
        cfg, state = self.cfg, self.state
        history = state.history
        bar = _progress_bar(cfg, state.rank, state.step)
        started, seconds_before = time.perf_counter(), history.seconds
        end = run_steps(cfg.steps)  # cfg.steps, or fewer in a dry run (profiles.run_steps)
        try:
            call_hook(self.callbacks, "on_fit_start", state)  # inside: one that fails still ends the others
            while state.step < end and not state.stop:
                loss, extras, grad_norm, lr = self._step()
                state.step += 1
                if state.step % cfg.log_every == 0 or state.step == end:
                    state.loss = _log_step(state, loss, grad_norm, extras, lr)
                call_hook(self.callbacks, "on_step_end", state)
                last = state.step >= end or state.stop
                if self.val_data is not None and (
                        last or (cfg.eval_every and state.step % cfg.eval_every == 0)):
                    with self._not_training():
                        self._eval()
                if bar is not None:
                    bar.set_postfix(_postfix(history), refresh=False)
                    bar.update(1)
                history.seconds = seconds_before + time.perf_counter() - started
                if self._checkpoint_due(last or state.stop):
                    with self._not_training():
                        self._checkpoint()
        except BaseException as err:  # a NaN loss, an OOM, Ctrl-C: still close what callbacks opened
            state.error = err
            raise
        finally:
            if bar is not None:
                bar.close()
            history.seconds = seconds_before + time.perf_counter() - started
            _end_callbacks(self.callbacks, state)
        return history

    def _step(self):
        cfg, state = self.cfg, self.state
        idx = batch_indices(len(self.train_data), cfg.batch_size, state.step, cfg.seed)  # (B,)
        idx = rank_slice(idx, state.rank, state.world_size)  # (B / world,) this rank's share
        batch = to_device(gather(self.train_data, idx), self.device)
        loss, extras = self._forward_backward(batch)
        grad_norm = optimizer_step(self.train_model, state.optimizer, self.scaler, cfg)
        lr = state.optimizer.param_groups[0]["lr"]  # the lr this step used; the scheduler moves it next
        self.scheduler.step()
        return loss, extras, grad_norm, lr

    def _forward_backward(self, batch):
        """The loss and its gradients; on the first step, fall back to eager if torch.compile fails.

        Compilation happens lazily, at the first forward and backward. Nothing has stepped yet at
        that point, so a compiler error can be retried eagerly on the same batch; any other error
        (a bug in the loss, out of memory) propagates unchanged.
        """
        args = (batch, self.loss_fn, self.state.optimizer, self.scaler, self.cfg, self.device)
        if self.compile_checked:
            return forward_backward(self.train_model, *args)
        self.compile_checked = True
        rng = rng_state()  # a failed compile attempt must not shift the dropout masks
        try:
            return forward_backward(self.train_model, *args)
        except Exception as err:
            if self.state.world_size > 1 or not is_compiler_error(err):
                raise
            first_line = str(err).splitlines()[0] if str(err) else ""
            warnings.warn(f"torch.compile failed here ({type(err).__name__}: {first_line}); "
                          f"training without it", stacklevel=4)
        set_rng_state(rng)
        self.train_model = self.state.model
        return forward_backward(self.train_model, *args)

    @contextmanager
    def _not_training(self):
        """Time spent in evaluation and checkpoints, kept apart so throughput counts training only."""
        synchronize(self.device)  # kernels still queued belong to the training steps before
        started = time.perf_counter()
        try:
            yield
        finally:
            self.state.overhead_seconds += time.perf_counter() - started

    def _eval(self) -> None:
        cfg, state = self.cfg, self.state
        metrics = evaluate(state.model, self.val_data, self.eval_fn, loss_fn=self.loss_fn,
                           device=self.device, amp_dtype=cfg.amp_dtype)
        history, early = state.history, state.extra["early_stop"]
        history.evals.append({"step": state.step, **metrics})
        name = cfg.metric or next(iter(metrics))
        if name not in metrics:
            raise KeyError(f"cfg.metric={name!r} is not among the eval metrics {sorted(metrics)}")
        higher = cfg.higher_is_better if cfg.higher_is_better is not None else "loss" not in name
        value, best = metrics[name], early["best"]
        if best is None or (value > best if higher else value < best):
            early["best"], early["bad_evals"] = value, 0
            history.best_step, history.best_metric = state.step, value
        else:
            early["bad_evals"] += 1
        history.metric = name
        if cfg.patience is not None and early["bad_evals"] >= cfg.patience:
            state.stop = history.stopped_early = True
        call_hook(self.callbacks, "on_eval", state, metrics)

    def _checkpoint_due(self, last: bool) -> bool:
        cfg = self.cfg
        every = cfg.checkpoint_every and self.state.step % cfg.checkpoint_every == 0
        return bool(cfg.checkpoint_dir) and bool(last or every)

    def _checkpoint(self) -> None:
        cfg, state = self.cfg, self.state
        # every rank's RNG state, so each rank resumes its own dropout stream (a collective: all call it)
        rank_rngs = all_gather_objects(rng_state(self.device)) if state.world_size > 1 else None
        if state.rank == 0:
            save_training_checkpoint(cfg.checkpoint_dir, state, self.scheduler, self.scaler,
                                     self.callbacks, config=asdict(cfg), keep=cfg.checkpoint_keep,
                                     rank_rngs=rank_rngs, device=self.device)
        if state.world_size > 1:
            dist.barrier()


def _end_callbacks(callbacks, state: TrainState) -> None:
    """``on_fit_end`` for every callback, also after a crash (``state.error`` says which): a
    TensorBoard writer is closed, a live plot drawn one last time. After a crash, a callback that
    fails in turn is reported as a warning, so the training error is the one that propagates."""
    if state.error is None:
        call_hook(callbacks, "on_fit_end", state)
        return
    for cb in callbacks:
        method = getattr(cb, "on_fit_end", None)
        try:
            if method is not None:
                method(state)
        except Exception as cleanup_err:
            warnings.warn(f"{type(cb).__name__}.on_fit_end failed after the training error "
                          f"({type(cleanup_err).__name__}: {cleanup_err})", stacklevel=3)


def _wrap(model: nn.Module, cfg: TrainConfig, world: int, device: torch.device) -> nn.Module:
    """The module the loss sees: compiled if asked, DDP-wrapped under torch.distributed."""
    train_model = _maybe_compile(model, cfg)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        train_model = DistributedDataParallel(train_model, device_ids=ids)
    return train_model


def _maybe_compile(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    if not cfg.compile:
        return model
    try:
        return torch.compile(model)
    except Exception as err:  # e.g. unsupported Python or platform
        warnings.warn(f"torch.compile is unavailable here ({type(err).__name__}: {err}); "
                      f"training without it", stacklevel=3)
        return model


def is_compiler_error(err: BaseException) -> bool:
    """Did torch.compile (Dynamo or Inductor) fail, rather than the model or the loss?

    Dynamo's TorchRuntimeError is not one: it wraps an error of the traced code itself (a shape
    mismatch in the model), which eager mode raises just the same."""
    found = {}
    for module_name, names in _COMPILER_ERRORS.items():
        try:
            module = importlib.import_module(module_name)
        except Exception:  # torch._dynamo may not import where compile is unsupported
            continue
        found.update({n: kind for n in names if isinstance(kind := getattr(module, n, None), type)})
    traced_code_error = found.pop("TorchRuntimeError", None)
    if traced_code_error is not None and isinstance(err, traced_code_error):
        return False
    return isinstance(err, tuple(found.values()))


# Exception types by module, looked up with getattr: they come and go between torch versions.
_COMPILER_ERRORS = {
    "torch._dynamo.exc": ("TorchDynamoException", "BackendCompilerFailed", "TorchRuntimeError"),
    "torch._inductor.exc": ("InductorError", "CppCompileError", "CUDACompileError",
                            "InvalidCxxCompiler", "TritonMissing", "GPUTooOldForTriton",
                            "LoweringException", "MissingOperatorWithDecomp",
                            "MissingOperatorWithoutDecomp"),
}


def forward_backward(train_model, batch, loss_fn, optimizer, scaler, cfg, device):
    """The loss of one batch and its gradients (scaled under fp16); no optimizer step yet."""
    with amp_autocast(device, cfg.amp_dtype):
        loss, extras = split_loss(loss_fn(train_model, batch))
    if loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar loss, got shape {tuple(loss.shape)}")
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return loss.detach(), extras


def optimizer_step(train_model, optimizer, scaler, cfg):
    """Clip the gradients (after unscaling them under fp16) and step; returns the raw grad norm."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = None
    if cfg.grad_clip is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(train_model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm


def _log_step(state: TrainState, loss: torch.Tensor, grad_norm, extras: dict, lr: float) -> float:
    """One history record: the step's loss, the lr it used, its grad norm and extras (as floats:
    the only device syncs of the step, paid every ``log_every`` steps)."""
    if state.world_size > 1:  # log the global-batch mean, as a single process would
        loss = loss.clone()
        dist.all_reduce(loss)
        loss /= state.world_size
    value = float(loss)
    if not math.isfinite(value):
        raise FloatingPointError(f"the training loss became {value} at step {state.step}; lower "
                                 f"the lr or enable grad_clip")
    record = {"step": state.step, "loss": value, "lr": lr}
    if grad_norm is not None:
        record["grad_norm"] = float(grad_norm)
    record.update({k: float(v) for k, v in extras.items()})
    state.history.steps.append(record)
    return value


def _progress_bar(cfg, rank, initial):
    if not cfg.progress or rank != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=initial, file=sys.stderr, desc="train", leave=True)


def _postfix(history) -> dict:
    post = {"loss": f"{history.steps[-1]['loss']:.4f}"} if history.steps else {}
    if history.evals and history.metric:
        post[history.metric] = f"{history.evals[-1][history.metric]:.4f}"
    return post
