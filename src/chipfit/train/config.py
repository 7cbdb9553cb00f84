"""``TrainConfig``: the options of one training run, checked when they are made (a value that would train to nonsense
is refused, naming its command-line option)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (defaults suit small images on a CPU)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    clip_grad: float | None = 5.0
    ema_decay: float | None = None
    seed: int = 0
    out: str | None = None
    resume: bool = False
    progress: bool = True
    model_name: str | None = None
    threads: int | None = None
    max_steps_per_epoch: int | None = None  # for quick runs and tests
    force: bool = False  # start afresh in an ``out`` that already holds files, overwriting them

    def __post_init__(self) -> None:
        """Refuse values that would train silently to nonsense, naming the command-line option."""
        def bad(option: str, value: Any, expected: str) -> ValueError:
            return ValueError(f"{option} {value!r}: must be {expected}")

        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise bad("--epochs", self.epochs, "a whole number >= 1")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad("--batch-size", self.batch_size, "a whole number >= 1")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 10):
            raise bad("--lr", self.lr, "a learning rate in (0, 10]")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("--weight-decay", self.weight_decay, "a finite number >= 0")
        if not (math.isfinite(self.warmup_epochs) and 0 <= self.warmup_epochs <= self.epochs):
            raise bad("--warmup-epochs", self.warmup_epochs, f"between 0 and the {self.epochs} epochs")
        if not 0 <= self.label_smoothing < 1:
            raise bad("--label-smoothing", self.label_smoothing, "in [0, 1)")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise bad("--ema", self.ema_decay, "a decay in (0, 1), e.g. 0.999 (the weight of the running average)")
        if self.resume and self.force:
            raise ValueError("--resume continues the run in --out and --force starts it afresh: give one of them")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
