"""Segmentation and detection as training tasks for :func:`chipfit.train.fit` (see :class:`chipfit.train.task.Task`).

The engine is the classifiers' (schedule, checkpoints, Ctrl-C and ``--resume``, torchrun); these say what the loss
is, what an epoch reports and how a split is judged: mIoU (segmentation, background included) and COCO mAP by
pycocotools (detection; ``best.pt`` follows mAP@0.5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from chipfit.train.dense.losses import fcos_loss, segmentation_loss
from chipfit.train.dense.metrics import SegMetrics, coco_map
from chipfit.train.task import is_dist, rank_world, run_one_batch


def _need_split_targets(data: Any, what: str) -> None:
    if getattr(data, "task", None) is None or not hasattr(data.train, "boxes"):
        raise ValueError(f"{what} trains on dense data (boxes and masks, chipfit.data.load_dense), got "
                         f"{type(data).__name__}: use --task classify for class-per-folder images")


class SegmentTask:
    """Semantic segmentation: pixel cross-entropy (optionally OHEM, BiSeNet's recipe), mIoU over all classes with
    background.

    Args:
        ohem_fraction: keep only the hardest fraction of pixels in the loss (None: all).
        eval_batch: images per evaluation batch.
    """

    name = "segment"
    score = "miou"
    record_key = "val_miou"

    def __init__(self, *, ohem_fraction: float | None = None, eval_batch: int = 64):
        self.ohem_fraction = ohem_fraction
        self.eval_batch = eval_batch

    def check_fits(self, model: nn.Module, data: Any) -> None:
        _need_split_targets(data, "segmentation")
        if data.train.masks is None:
            raise ValueError(f"{data.name} has no masks (loaded for task {data.task!r}): load it with "
                             "task='segment' or 'both'")
        out = run_one_batch(model, data)
        want = (data.num_classes + 1, *data.image_size)
        if not isinstance(out, torch.Tensor) or tuple(out.shape[1:]) != want:
            got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model outputs {got} per image; segmentation of {data.name} needs logits {want} "
                             f"({data.num_classes} classes + background at full resolution; build it with "
                             f"num_classes={data.num_classes})")

    def loss(self, out: Any, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        main, aux = (out[0], list(out[1:])) if isinstance(out, (tuple, list)) else (out, None)
        res = segmentation_loss(main, target["masks"], ohem_fraction=self.ohem_fraction, aux=aux)
        n = len(main)
        return res["loss"], {"n": n, "loss": float(res["loss"].detach()) * n}

    def train_figures(self, totals: dict[str, float]) -> dict[str, float]:
        return {"train_loss": totals.get("loss", 0.0) / max(totals.get("n", 0), 1)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: Any, split: str) -> dict[str, Any]:
        was = model.training
        model.eval()
        rank, world = rank_world()
        m = SegMetrics(data.num_classes, class_names=data.classes)
        loss_sum, n = torch.zeros(1, dtype=torch.float64), 0
        for x, t in data.batches(split, self.eval_batch, rank=rank, world=world):
            out = model(x)
            loss_sum += float(segmentation_loss(out, t["masks"])["loss"]) * len(x)
            m.update(out, t["masks"])
            n += len(x)
        model.train(was)
        counts = torch.tensor([n], dtype=torch.float64)
        if is_dist():
            dist.all_reduce(m.confusion)
            dist.all_reduce(loss_sum)
            dist.all_reduce(counts)
        res = m.compute()
        res["loss"] = float(loss_sum) / max(float(counts), 1)
        res["n"] = int(counts)
        return res

    def val_figures(self, res: dict[str, Any]) -> dict[str, float]:
        return {"val_loss": res["loss"], "val_miou": res["miou"], "val_pixel_acc": res["pixel_accuracy"]}


class DetectTask:
    """One-stage anchor-free detection (FCOS): focal + GIoU + centerness loss over the detector's points; COCO mAP
    by pycocotools on the decoded, NMS-filtered boxes.

    The model must have ``points(height, width)`` and ``decode(cls, box, ctr, ...)``
    (:class:`chipfit.models.dense.FCOS`).

    Args:
        eval_batch: images per evaluation batch.
        score_threshold, iou_threshold, max_detections: decoding for evaluation (COCO keeps 100 per image).
    """

    name = "detect"
    score = "map50"
    record_key = "val_map50"

    def __init__(self, *, eval_batch: int = 64, score_threshold: float = 0.05, iou_threshold: float = 0.6,
                 max_detections: int = 100):
        self.eval_batch = eval_batch
        self.score_threshold, self.iou_threshold, self.max_detections = score_threshold, iou_threshold, max_detections
        self._points: tuple[torch.Tensor, torch.Tensor] | None = None
        self._classes = 0

    def check_fits(self, model: nn.Module, data: Any) -> None:
        _need_split_targets(data, "detection")
        if not (hasattr(model, "points") and hasattr(model, "decode")):
            raise ValueError(f"{type(model).__name__} is not a detector (no points()/decode()): pick a detector, "
                             "e.g. fcos_quadranet_s (`chipfit models --task detect`)")
        out = run_one_batch(model, data)
        self._points = model.points(*data.image_size)
        self._classes = data.num_classes
        a = len(self._points[0])
        if (not isinstance(out, (tuple, list)) or len(out) != 3
                or tuple(out[0].shape[1:]) != (a, data.num_classes)):
            got = tuple(out[0].shape[1:]) if isinstance(out, (tuple, list)) else type(out).__name__
            raise ValueError(f"the detector's class output is {got} per image; {data.name} needs ({a}, "
                             f"{data.num_classes}) ({data.num_classes} classes; build it with "
                             f"num_classes={data.num_classes})")

    def _loss(self, out: Any, target: dict[str, Any]) -> dict[str, Any]:
        cls, box, ctr = out
        xy, strides = self._points
        return fcos_loss({"cls": cls, "box": box, "ctr": ctr}, xy, strides, target["boxes"], target["labels"],
                         self._classes)

    def loss(self, out: Any, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        res = self._loss(out, target)
        n = len(out[0])
        return res["loss"], {"n": n, **{k: float(res[k].detach()) * n for k in ("loss", "cls", "box", "ctr")}}

    def train_figures(self, totals: dict[str, float]) -> dict[str, float]:
        n = max(totals.get("n", 0), 1)
        return {f"train_{k}": totals.get(k, 0.0) / n for k in ("loss", "cls", "box", "ctr")}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: Any, split: str) -> dict[str, Any]:
        """mAP over the whole split; under torchrun every process evaluates all of it (COCOeval needs every image)."""
        if self._points is None:
            self.check_fits(model, data)
        was = model.training
        model.eval()
        preds, gts, loss_sum, n = [], [], 0.0, 0
        for x, t in data.batches(split, self.eval_batch):
            out = model(x)
            loss_sum += float(self._loss(out, t)["loss"]) * len(x)
            n += len(x)
            preds += model.decode(*out, score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
                                  max_detections=self.max_detections, image_size=data.image_size)
            gts += [{"boxes": b, "labels": lab} for b, lab in zip(t["boxes"], t["labels"], strict=True)]
        model.train(was)
        res = coco_map(preds, gts, num_classes=data.num_classes, image_size=data.image_size)
        res["per_class_ap50"] = {data.classes[k]: v for k, v in res["per_class_ap50"].items()}
        res["loss"] = loss_sum / max(n, 1)
        res["n"] = n
        return res

    def val_figures(self, res: dict[str, Any]) -> dict[str, float]:
        return {"val_loss": res["loss"], "val_map50": res["map50"], "val_map": res["map"]}


def make_task(name: str, **options: Any) -> Any:
    """The task called ``name``: classify, segment or detect."""
    from chipfit.train.task import ClassifyTask

    tasks = {"classify": ClassifyTask, "segment": SegmentTask, "detect": DetectTask}
    if name not in tasks:
        raise ValueError(f"unknown task {name!r}: classify, segment or detect")
    return tasks[name](**options)
