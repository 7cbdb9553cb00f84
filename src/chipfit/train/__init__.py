"""Making networks learn: the training engine, checkpoints, and runs that leave a report behind."""

from chipfit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from chipfit.train.engine import TrainConfig, TrainHooks, TrainResult, evaluate, fit

__all__ = ["CheckpointError", "TrainConfig", "TrainHooks", "TrainResult", "evaluate", "fit", "load_checkpoint",
           "save_checkpoint"]
