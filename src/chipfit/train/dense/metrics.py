"""Metrics for dense prediction: mIoU for segmentation, box IoU and COCO mAP for detection.

Conventions shared with :mod:`chipfit.train.dense.losses` and the dense models:

- Boxes are float ``(k, 4)`` tensors ``(x1, y1, x2, y2)`` in pixels; a box's area is ``(x2 - x1) * (y2 - y1)`` with
  no "+1" (as pycocotools measures it). Box labels are the foreground classes ``0..K-1``.
- Segmentation masks are long ``(H, W)`` or ``(B, H, W)``: 0 is background, ``i`` is class ``i - 1`` and 255 is
  ignored. Segmentation logits are ``(B, K + 1, H, W)``.

mIoU is the mean over the classes that occur, in the target or in the prediction, among the pixels counted (those
whose target is not the ignore index); a class absent from both has no IoU (NaN in the per-class tensor) and is left
out of the mean. By default the background counts as a class, as in Cityscapes' and VOC's mIoU over all classes.
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch

_EPS = 1e-9


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, *,
                     ignore_index: int = 255) -> torch.Tensor:
    """Pixel counts ``(C, C)`` over ``C = num_classes`` labels (rows: target, columns: prediction).

    Args:
        pred: predicted labels ``(..., H, W)``, or logits ``(B, C, H, W)`` (taken by argmax over dim 1).
        target: labels ``(..., H, W)`` in ``0..C-1`` or ``ignore_index``; pixels with the ignore index are skipped.
        num_classes: C, all labels including the background.
        ignore_index: the target value of pixels not counted.
    """
    pred = _labels(pred, target, num_classes)
    return _per_image_confusion(pred.reshape(1, -1), target.reshape(1, -1), num_classes, ignore_index)[0]


class SegMetrics:
    """Segmentation metrics accumulated over batches: ``update(pred, masks)`` per batch, then read the properties.

    Args:
        num_classes: the foreground classes K; the confusion matrix has K + 1 labels (0 is background).
        ignore_index: the mask value of pixels not counted (their prediction is ignored too).
        include_background: whether the background is one of the classes :attr:`miou` averages over.
        class_names: K names for :attr:`per_class_iou`'s keys (then ``"background"`` and the names); without them
            the keys are the mask values ``0..K``.
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255, include_background: bool = True,
                 class_names: Sequence[str] | None = None):
        if num_classes < 1:
            raise ValueError(f"num_classes is the number of foreground classes (>= 1), got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for {num_classes} classes: give one name per class")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.class_names = list(class_names) if class_names is not None else None
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        c = self.num_classes + 1
        self.confusion = torch.zeros(c, c, dtype=torch.int64)
        self.image_ious: list[float] = []

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` is logits ``(B, K+1, H, W)`` or labels ``(B, H, W)`` / ``(H, W)``; ``target`` the
        masks of the same spatial shape."""
        c = self.num_classes + 1
        pred = _labels(pred, target, c)
        if target.dim() == 2:
            pred, target = pred[None], target[None]
        per_image = _per_image_confusion(pred.flatten(1), target.flatten(1), c, self.ignore_index).cpu()
        self.confusion += per_image.sum(0)
        self.image_ious.extend(_mean_present(_iou(per_image), self._first).tolist())

    @property
    def _first(self) -> int:
        return 0 if self.include_background else 1

    @property
    def iou(self) -> torch.Tensor:
        """IoU per label ``0..K`` (float64), NaN for a label absent from both target and prediction."""
        return _iou(self.confusion)

    @property
    def miou(self) -> float:
        """The mean IoU over the classes present (see the module docstring), background included unless
        ``include_background=False``."""
        if int(self.confusion.sum()) == 0:
            raise ValueError("no labelled pixels accumulated: call update() with masks that are not all ignored")
        v = float(_mean_present(self.iou[None], self._first)[0])
        if math.isnan(v):
            raise ValueError("only background pixels accumulated, and include_background=False: mIoU is undefined")
        return v

    @property
    def per_class_iou(self) -> dict[int | str, float]:
        """IoU of every label (background first), NaN where the class occurs in neither target nor prediction."""
        keys: list[int | str] = (["background", *self.class_names] if self.class_names is not None
                                 else list(range(self.num_classes + 1)))
        return dict(zip(keys, self.iou.tolist(), strict=True))

    @property
    def pixel_accuracy(self) -> float:
        """Correct pixels over counted pixels (all labels, background included)."""
        n = int(self.confusion.sum())
        if n == 0:
            raise ValueError("no labelled pixels accumulated: call update() with masks that are not all ignored")
        return int(self.confusion.diag().sum()) / n

    @property
    def per_image_iou(self) -> list[float]:
        """Each image's mean IoU (same convention as :attr:`miou`, over that image's pixels), in update order; NaN
        for an image without a counted pixel."""
        return list(self.image_ious)

    def compute(self) -> dict[str, Any]:
        """All of the above as one JSON-ready dict: ``miou``, ``pixel_accuracy``, ``per_class_iou``,
        ``per_image_iou``."""
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy, "per_class_iou": self.per_class_iou,
                "per_image_iou": self.per_image_iou}


def _labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Predicted labels from logits (argmax over dim 1) or labels, checked against the target's shape."""
    if pred.is_floating_point():
        if pred.dim() != 4 or pred.shape[1] != num_classes:
            raise ValueError(f"logits of shape {tuple(pred.shape)}: expected (B, {num_classes}, H, W)")
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if target.dim() not in (2, 3):
        raise ValueError(f"masks are (H, W) or (B, H, W), got {tuple(target.shape)}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"predicted labels lie in {int(pred.min())}..{int(pred.max())}: expected 0..{num_classes - 1}")
    return pred.long()


def _per_image_confusion(pred: torch.Tensor, target: torch.Tensor, c: int, ignore_index: int) -> torch.Tensor:
    """``(B, c, c)`` counts from flat ``(B, N)`` labels, in one bincount."""
    b = target.shape[0]
    target = target.long()
    keep = target != ignore_index
    bad = keep & ((target < 0) | (target >= c))
    if bool(bad.any()):
        raise ValueError(f"mask values {sorted(set(target[bad].tolist()))[:5]} are neither a label 0..{c - 1} nor "
                         f"the ignore index {ignore_index}")
    img = torch.arange(b, device=target.device)[:, None].expand_as(target)
    idx = (img * c + target) * c + pred
    return torch.bincount(idx[keep], minlength=b * c * c).view(b, c, c)


def _iou(conf: torch.Tensor) -> torch.Tensor:
    """IoU per label from ``(..., c, c)`` counts: TP / (TP + FP + FN), NaN where the union is empty."""
    conf = conf.double()
    tp = conf.diagonal(dim1=-2, dim2=-1)
    union = conf.sum(-1) + conf.sum(-2) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))


def _mean_present(iou: torch.Tensor, first: int) -> torch.Tensor:
    """Mean over the labels ``first..`` that have an IoU, per row; NaN for a row with none."""
    iou = iou[:, first:]
    present = ~iou.isnan()
    n = present.sum(-1)
    s = torch.where(present, iou, torch.zeros_like(iou)).sum(-1)
    return torch.where(n > 0, s / n.clamp_min(1), torch.full_like(s, math.nan))


# ---- boxes -----------------------------------------------------------------------------------------------------


def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)


def _inter_union_hull(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersection, union and enclosing-box areas of broadcast boxes ``a`` and ``b``."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = _area(a) + _area(b) - inter
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp_min(0).prod(-1)
    return inter, union, hull


def _pair(a: torch.Tensor, b: torch.Tensor, aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"boxes are (n, 4) xyxy, got {tuple(a.shape)} and {tuple(b.shape)}")
    if aligned:
        if a.shape != b.shape:
            raise ValueError(f"aligned boxes need one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        return a, b
    return a[:, None, :], b[None, :, :]


def box_iou(a: torch.Tensor, b: torch.Tensor, *, aligned: bool = False) -> torch.Tensor:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4): ``(n, m)``; with ``aligned=True`` of
    ``a[i]`` with ``b[i]`` only: ``(n,)``. Boxes are xyxy; an empty union gives 0. The pairwise form is the
    detector's own (:func:`chipfit.models.dense.box_iou`, which its NMS uses), so the metric and NMS agree."""
    from chipfit.models.dense.detect import box_iou as pairwise

    a2, b2 = _pair(a, b, aligned)
    if not aligned:
        return pairwise(a, b)
    inter, union, _ = _inter_union_hull(a2, b2)
    return inter / union.clamp_min(_EPS)


def giou(a: torch.Tensor, b: torch.Tensor, *, aligned: bool = False) -> torch.Tensor:
    """Generalised IoU (Rezatofighi et al., 2019), IoU - (hull - union) / hull in [-1, 1], pairwise ``(n, m)`` or,
    with ``aligned=True``, elementwise ``(n,)``; differentiable (the GIoU loss is ``1 - giou``)."""
    a, b = _pair(a, b, aligned)
    inter, union, hull = _inter_union_hull(a, b)
    return inter / union.clamp_min(_EPS) - (hull - union) / hull.clamp_min(_EPS)


# ---- COCO mAP --------------------------------------------------------------------------------------------------


def coco_map(predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]], *,
             num_classes: int, image_size: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
             score_threshold: float = 0.3, match_iou: float = 0.5, max_dets: int = 100) -> dict[str, Any]:
    """COCO box mAP by pycocotools (``COCOeval``, iouType ``bbox``), from tensors in memory.

    Every ground-truth box is one annotation with ``iscrowd=0`` and its area from the box; classes are COCO
    categories ``label + 1`` and images ids ``index + 1`` (COCOeval takes a matched id of 0 for "unmatched").
    COCOeval keeps the ``max_dets`` highest-scoring detections per image (its default ``maxDets`` is [1, 10, 100]:
    ``max_dets`` sets the last, which the mAP numbers use). pycocotools' prints are silenced.

    Args:
        predictions: per image, ``{"boxes": (n, 4) xyxy, "scores": (n,), "labels": (n,) in 0..K-1}``.
        ground_truth: per image, ``{"boxes": (g, 4), "labels": (g,)}``; images without boxes are fine.
        num_classes: K.
        image_size: ``(height, width)`` of all images, or one per image; written into the COCO image records
            (COCOeval's box metrics do not use it).
        score_threshold: detections scoring at least this count in the per-image summary (not in the mAP).
        match_iou: IoU at which the per-image summary matches a detection to a box of its class.
        max_dets: detections per image that COCOeval keeps.

    Returns:
        ``map`` (AP over IoU 0.50:0.05:0.95), ``map50``, ``map75``, ``map_small/medium/large``, ``stats`` (COCOeval's
        twelve numbers, NaN where COCOeval writes -1: no ground truth of that size), ``per_class_ap50`` (class -> AP
        at IoU 0.5, NaN for a class without ground truth), and ``per_image``: for each image its index ``image``,
        ``num_gt``, ``num_det`` (detections scoring >= ``score_threshold``) and ``matched`` (boxes found by those
        detections, matched greedily by descending score at ``match_iou``).

    Raises:
        ValueError: when there is no ground-truth box at all (mAP is undefined), or on malformed input.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truth)} images: give one per image")
    sizes = _sizes(image_size, len(ground_truth))
    gts = [_read(g, num_classes, f"ground_truth[{i}]", scores=False) for i, g in enumerate(ground_truth)]
    dts = [_read(p, num_classes, f"predictions[{i}]", scores=True) for i, p in enumerate(predictions)]
    if sum(len(g[0]) for g in gts) == 0:
        raise ValueError("no ground-truth boxes in any image: mAP is undefined; evaluate on images with objects")

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1, **({"height": s[0], "width": s[1]} if s else {})} for i, s in enumerate(sizes)]
    categories = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    gt_anns = _annotations(gts, with_score=False)
    dt_anns = _annotations(dts, with_score=True)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
        # built as loadRes would build it (area from the box, iscrowd 0, ids from 1), which fails on no detections
        coco_dt.dataset = {"images": list(images), "annotations": dt_anns, "categories": categories}
        coco_gt.createIndex()
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(s) if s > -1 else math.nan for s in ev.stats]  # COCOeval's -1: no ground truth in that range
    # precision: (iou thresholds, 101 recall points, classes, area ranges, maxDets); -1 where a class has no GT
    p50 = ev.eval["precision"][0, :, :, 0, -1]
    per_class = {}
    for k in range(num_classes):
        col = p50[:, ev.params.catIds.index(k + 1)]
        per_class[k] = float(col[col > -1].mean()) if (col > -1).any() else math.nan
    per_image = [{"image": i} | _match_image(g, d, score_threshold, match_iou)
                 for i, (g, d) in enumerate(zip(gts, dts, strict=True))]
    return {"map": stats[0], "map50": stats[1], "map75": stats[2], "map_small": stats[3], "map_medium": stats[4],
            "map_large": stats[5], "stats": stats, "per_class_ap50": per_class, "per_image": per_image}


def _sizes(image_size: Any, n: int) -> list[tuple[int, int] | None]:
    if image_size is None:
        return [None] * n
    if len(image_size) == 2 and all(isinstance(v, numbers.Integral) for v in image_size):
        return [(int(image_size[0]), int(image_size[1]))] * n
    if len(image_size) != n:
        raise ValueError(f"{len(image_size)} image sizes for {n} images: give one (height, width) or one per image")
    return [tuple(int(v) for v in s) for s in image_size]


def _read(d: Mapping[str, Any], k: int, where: str, *, scores: bool) -> tuple[torch.Tensor, ...]:
    """(boxes, labels[, scores]) of one image as CPU tensors, checked."""
    need = ("boxes", "labels", "scores") if scores else ("boxes", "labels")
    missing = [key for key in need if key not in d]
    if missing:
        raise ValueError(f"{where} lacks {missing}: each image is a dict with {list(need)}")
    boxes = torch.as_tensor(d["boxes"], dtype=torch.float64).detach().cpu().reshape(-1, 4)
    labels = torch.as_tensor(d["labels"]).detach().cpu().long().reshape(-1)
    out = [boxes, labels]
    if scores:
        out.append(torch.as_tensor(d["scores"], dtype=torch.float64).detach().cpu().reshape(-1))
    if any(len(t) != len(boxes) for t in out):
        raise ValueError(f"{where}: {', '.join(f'{n} {len(t)}' for n, t in zip(need, out, strict=True))} differ "
                         "in length")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"{where}: labels {int(labels.min())}..{int(labels.max())} outside the classes 0..{k - 1}")
    return tuple(out)


def _annotations(per_image: list[tuple[torch.Tensor, ...]], *, with_score: bool) -> list[dict[str, Any]]:
    anns: list[dict[str, Any]] = []
    for i, item in enumerate(per_image):
        boxes, labels = item[0], item[1]
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        for j, (bb, lab) in enumerate(zip(xywh.tolist(), labels.tolist(), strict=True)):
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": lab + 1, "bbox": bb,
                   "area": bb[2] * bb[3], "iscrowd": 0}
            if with_score:
                ann["score"] = float(item[2][j])
            anns.append(ann)
    return anns


def _match_image(gt: tuple[torch.Tensor, ...], dt: tuple[torch.Tensor, ...], score_threshold: float,
                 match_iou: float) -> dict[str, int]:
    """Greedy matching by descending score: each detection takes the unmatched box of its class it overlaps most,
    if at ``match_iou`` or more."""
    gb, gl = gt
    db, dl, ds = dt
    keep = ds >= score_threshold
    db, dl, ds = db[keep], dl[keep], ds[keep]
    matched = 0
    if len(gb) and len(db):
        order = ds.argsort(descending=True, stable=True)
        iou = box_iou(db[order], gb)
        iou[dl[order][:, None] != gl[None, :]] = -1
        free = torch.ones(len(gb), dtype=torch.bool)
        for row in iou:
            row = torch.where(free, row, torch.full_like(row, -1))
            j = int(row.argmax())
            if row[j] >= match_iou:
                free[j] = False
                matched += 1
    return {"num_gt": len(gb), "num_det": len(db), "matched": matched}
