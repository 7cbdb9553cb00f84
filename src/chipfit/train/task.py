"""What a training run optimises and how it is judged: a :class:`Task` (classification here; segmentation and
detection in :mod:`chipfit.train.dense`). The engine (:mod:`chipfit.train.engine`) owns the loop, the schedule, the
checkpoints and resuming; a task owns the loss, the running training figures, the evaluation and its headline score.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from chipfit.data import DataBundle


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if is_dist() else (0, 1)


class Task(Protocol):
    """The part of a training run that depends on what the network predicts.

    Attributes:
        name: classify, segment or detect.
        score: the key of :meth:`evaluate`'s result that picks ``best.pt`` (higher is better): accuracy, miou, map50.
        record_key: the same score's key in the epoch's record (val_acc, val_miou, val_map50).
    """

    name: str
    score: str
    record_key: str

    def check_fits(self, model: nn.Module, data: Any) -> None:
        """One batch through the model before training; a ``ValueError`` saying what does not fit."""

    def loss(self, out: Any, target: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of one batch and figures to sum over the epoch (each a total over the batch; ``n`` the
        batch's size)."""

    def train_figures(self, totals: dict[str, float]) -> dict[str, float]:
        """The epoch's training figures (``train_loss`` and the like) from the summed batch figures."""

    def evaluate(self, model: nn.Module, data: Any, split: str) -> dict[str, Any]:
        """``loss``, ``self.score`` and whatever else the task reports on a split."""

    def val_figures(self, res: dict[str, Any]) -> dict[str, float]:
        """What of :meth:`evaluate`'s result goes into the epoch's record (``val_loss``, ``val_acc``, ...)."""


class ClassifyTask:
    """Image classification: cross-entropy with label smoothing, top-1 accuracy."""

    name = "classify"
    score = "accuracy"
    record_key = "val_acc"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def check_fits(self, model: nn.Module, data: DataBundle) -> None:
        out = run_one_batch(model, data)
        if out.dim() != 2 or out.shape[1] != data.num_classes:
            raise ValueError(f"the model outputs {tuple(out.shape[1:])} per image; {data.name} has "
                             f"{data.num_classes} classes (build it with num_classes=...)")

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.cross_entropy(out, target, label_smoothing=self.label_smoothing)
        n = len(target)
        return loss, {"n": n, "loss": loss.item() * n, "correct": int((out.argmax(1) == target).sum())}

    def train_figures(self, totals: dict[str, float]) -> dict[str, float]:
        n = max(totals.get("n", 0), 1)
        return {"train_loss": totals.get("loss", 0.0) / n, "train_acc": totals.get("correct", 0) / n}

    def evaluate(self, model: nn.Module, data: DataBundle, split: str) -> dict[str, Any]:
        return evaluate(model, data, split)

    def val_figures(self, res: dict[str, Any]) -> dict[str, float]:
        return {"val_loss": res["loss"], "val_acc": res["accuracy"]}


def run_one_batch(model: nn.Module, data: Any) -> Any:
    """Two training images through ``model`` in eval mode: a model that cannot take the data fails here, clearly."""
    x = data.normalise(data.train.images[:2])
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    except Exception as e:
        raise ValueError(f"the model cannot take {data.name} images of shape {tuple(x.shape[1:])}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        model.train(was)


@torch.no_grad()
def evaluate(model: nn.Module, data: DataBundle, split: str = "val", batch_size: int = 512,
             per_class: bool = False) -> dict[str, Any]:
    """Loss and top-1 accuracy on a split (all-reduced across processes); optionally the confusion matrix."""
    was = model.training
    model.eval()
    rank, world = rank_world()
    k = data.num_classes
    conf = torch.zeros(k, k, dtype=torch.int64)
    loss_sum = torch.zeros(1, dtype=torch.float64)
    for x, y in data.batches(split, batch_size, rank=rank, world=world):
        out = model(x)
        loss_sum += F.cross_entropy(out, y, reduction="sum").double()
        conf += torch.bincount(y * k + out.argmax(1), minlength=k * k).view(k, k)
    if is_dist():
        dist.all_reduce(conf)
        dist.all_reduce(loss_sum)
    model.train(was)
    n = int(conf.sum())
    res: dict[str, Any] = {"loss": float(loss_sum) / max(n, 1), "accuracy": float(conf.diag().sum()) / max(n, 1),
                           "n": n}
    if per_class:
        res["per_class"] = {c: float(conf[i, i]) / max(int(conf[i].sum()), 1) for i, c in enumerate(data.classes)}
        res["confusion"] = conf.tolist()
    return res
