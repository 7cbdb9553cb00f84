"""Making networks learn: the training engine and its checkpoints.

A run from names, leaving a report behind (``chipfit train``), is :func:`chipfit.api.train`."""

from chipfit.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from chipfit.train.config import TrainConfig
from chipfit.train.engine import TrainHooks, TrainResult, evaluate, fit

__all__ = ["CheckpointError", "TrainConfig", "TrainHooks", "TrainResult", "evaluate", "fit", "load_checkpoint",
           "save_checkpoint"]
