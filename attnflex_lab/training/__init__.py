"""The training engine: ``fit()`` and what it is built from.

Modules import downward only, so there is no circle:

    config       TrainConfig, History, lr_factor, AMP_DTYPES   (a leaf: plain data)
    batches      the seeded batch stream, rank slices, device moves
    distributed  torchrun / DDP set-up: rank, world size, this rank's device
    evaluation   evaluate(), autocast for a config's AMP dtype
    callbacks    TrainState (typed with config's classes), RecordAttention
    tracking     CSVLogger, TensorBoardLogger (optional tensorboard): History written to disk
    live_plot    LiveCurve / LivePlot: a loss curve redrawn in place in a notebook (any loop / fit)
    checkpoint   atomic save, weights-only load, RNG states, refusing a used checkpoint folder
    optim        AdamW with decay / no-decay parameter groups, fused on CUDA
    loop         TrainingRun: one step, logging, evaluation, checkpoints, the live plot
    train        fit(): seeds each rank, builds the optimizer, restores a checkpoint, runs the loop
"""

from .callbacks import RecordAttention, TrainState
from .checkpoint import load_checkpoint, weights_sha256
from .config import History, TrainConfig, lr_factor
from .evaluation import evaluate
from .live_plot import LiveCurve, LivePlot
from .tracking import CSVLogger, TensorBoardLogger
from .train import fit

__all__ = ["CSVLogger", "History", "LiveCurve", "LivePlot", "RecordAttention", "TensorBoardLogger", "TrainConfig",
           "TrainState", "evaluate", "fit", "load_checkpoint", "lr_factor", "weights_sha256"]
