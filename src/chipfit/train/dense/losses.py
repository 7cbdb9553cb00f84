"""Training targets and losses for dense prediction: FCOS for detection, cross-entropy (with OHEM) for segmentation.

The detector these serve (Tian et al., FCOS, 2019) predicts at every point of every feature level: ``cls`` (B, A, K)
logits, ``box`` (B, A, 4) distances (l, t, r, b) in pixels from the point to the box's edges (positive: the detector
makes them so, by exp or ReLU), and ``ctr`` (B, A) centerness logits, over points ``xy`` (A, 2) (pixel centres) of
strides ``strides`` (A,). Boxes, labels and masks follow :mod:`chipfit.train.dense.metrics`' conventions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from chipfit.train.dense.metrics import giou

_EPS = 1e-9


class FcosTargets(NamedTuple):
    """One image's per-point targets.

    Attributes:
        cls: (A,) long: the class 0..K-1 of the box a point is assigned to, -1 for background.
        box: (A, 4) (l, t, r, b) from the point to its box's edges in pixels; 0 for background.
        ctr: (A,) centerness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``; 0 for background.
        gt_index: (A,) long: the index of the assigned box, -1 for background.
    """

    cls: torch.Tensor
    box: torch.Tensor
    ctr: torch.Tensor
    gt_index: torch.Tensor


def default_ranges(strides: Sequence[int] | torch.Tensor) -> list[tuple[float, float]]:
    """Each level's range of ``max(l, t, r, b)``, for the distinct strides in ascending order.

    The level of stride ``s`` takes ``(4s, 8s]`` (FCOS's 0/64/128/256/512 for strides 8..128), the first from 0 and
    the last to infinity; each level starts where the one before ends, so that strides which do not double (or
    levels missing from a small image) leave no box size without a level.
    """
    levels = sorted({int(s) for s in torch.as_tensor(strides).flatten().tolist()})
    his = [8.0 * s for s in levels[:-1]] + [math.inf]
    return [(0.0 if i == 0 else his[i - 1], hi) for i, hi in enumerate(his)]


def fcos_targets(xy: torch.Tensor, strides: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, *,
                 ranges: Sequence[tuple[float, float]] | None = None, center_radius: float = 1.5) -> FcosTargets:
    """Assign one image's boxes to points, FCOS-style with centre sampling.

    A point is a candidate for a box when it lies strictly inside the box, within ``center_radius * stride`` of the
    box's centre along x and along y (FCOS's square sampling region), and the largest of its four distances to the
    box's edges lies in its level's range. A box left without any candidate (smaller than the grid, or thin and off
    the grid's rows) gets the point nearest its centre among the level whose range holds ``max(w, h) / 2`` (the
    largest distance seen from its centre), so that no box goes untrained; such a point may lie outside the box
    (negative distances), and is then given centerness 1, being the most central point the grid has for the box.
    A point that is a candidate for several boxes takes the one of smallest area (the first such, on equal areas).
    A box that so loses all its candidates (a big box with a smaller one at its centre, two tiny boxes sharing their
    nearest point) takes the unassigned point of its level nearest its centre; only when its level has no
    unassigned point left does it go without.

    Args:
        xy: (A, 2) point centres in pixels.
        strides: (A,) each point's stride.
        boxes: (G, 4) xyxy in pixels.
        labels: (G,) classes 0..K-1.
        ranges: ``(low, high]`` of ``max(l, t, r, b)`` per distinct stride, in ascending order of stride; by default
            :func:`default_ranges`.
        center_radius: the sampling radius, in strides.
    """
    xy, strides = xy.float(), strides.to(xy.device)
    boxes = boxes.to(xy.device, torch.float32).reshape(-1, 4)
    labels = labels.to(xy.device).long().reshape(-1)
    a, g = len(xy), len(boxes)
    if xy.shape != (a, 2) or strides.shape != (a,):
        raise ValueError(f"points are xy (A, 2) with strides (A,), got {tuple(xy.shape)} and {tuple(strides.shape)}")
    if len(labels) != g:
        raise ValueError(f"{g} boxes with {len(labels)} labels: give one label per box")
    if g and bool((boxes[:, 2:] < boxes[:, :2]).any()):
        raise ValueError("boxes with x2 < x1 or y2 < y1: boxes are (x1, y1, x2, y2) in pixels")
    if g == 0:
        return FcosTargets(torch.full((a,), -1, dtype=torch.long, device=xy.device), xy.new_zeros(a, 4),
                           xy.new_zeros(a), torch.full((a,), -1, dtype=torch.long, device=xy.device))
    levels = torch.unique(strides)  # sorted ascending
    ranges = default_ranges(levels) if ranges is None else [tuple(map(float, r)) for r in ranges]
    if len(ranges) != len(levels):
        raise ValueError(f"{len(ranges)} ranges for {len(levels)} distinct strides {levels.tolist()}: give one "
                         "(low, high) per stride, in ascending order of stride")
    rng = torch.tensor(ranges, dtype=torch.float32, device=xy.device)  # (L, 2)
    lo, hi = rng[torch.searchsorted(levels, strides)].unbind(-1)  # (A,)

    x, y = xy[:, :1], xy[:, 1:]
    ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], -1)  # (A, G, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (G, 2)
    radius = center_radius * strides.float()[:, None]
    central = ((x - centre[:, 0]).abs() < radius) & ((y - centre[:, 1]).abs() < radius)
    far = ltrb.max(-1).values
    cand = (ltrb.min(-1).values > 0) & central & (far > lo[:, None]) & (far <= hi[:, None])

    orphans = (~cand.any(0)).nonzero().flatten()
    if len(orphans):
        cand[_level_distances(xy, strides, levels, rng, boxes[orphans]).argmin(0), orphans] = True

    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cost = torch.where(cand, area[None, :].expand(a, g), torch.full_like(far, math.inf))
    best, gt = cost.min(1)
    pos = best < math.inf
    owned = torch.zeros(g, dtype=torch.bool, device=xy.device)
    owned[gt[pos]] = True
    lost = (~owned).nonzero().flatten()
    if len(lost):  # every candidate went to smaller boxes (one at the centre of a bigger one): take a free point
        lost = lost[area[lost].argsort(stable=True)]
        d2 = _level_distances(xy, strides, levels, rng, boxes[lost])
        for i, j in enumerate(lost.tolist()):
            d = torch.where(pos, torch.full_like(d2[:, i], math.inf), d2[:, i])
            p = int(d.argmin())
            if d[p] < math.inf:
                pos[p], gt[p] = True, j
    box_t = ltrb[torch.arange(a, device=xy.device), gt] * pos[:, None]
    lr, tb = box_t[:, 0::2], box_t[:, 1::2]
    ratio = lr.min(1).values / lr.max(1).values.clamp_min(_EPS) * tb.min(1).values / tb.max(1).values.clamp_min(_EPS)
    inside = box_t.min(1).values > 0
    ctr = torch.where(inside, ratio.clamp_min(0).sqrt(), torch.ones_like(ratio)) * pos
    gt = torch.where(pos, gt, torch.full_like(gt, -1))
    cls = torch.where(pos, labels[gt.clamp_min(0)], torch.full_like(gt, -1))
    return FcosTargets(cls, box_t, ctr, gt)


def _level_distances(xy: torch.Tensor, strides: torch.Tensor, levels: torch.Tensor, rng: torch.Tensor,
                     boxes: torch.Tensor) -> torch.Tensor:
    """(A, n) squared distances from the points to each box's centre, infinite off the level whose range best holds
    the box's max(w, h) / 2: the one that holds it, else the nearest on a log scale (given ranges may leave gaps)."""
    half = ((boxes[:, 2:] - boxes[:, :2]).max(1).values / 2).clamp_min(1e-6).log()[:, None]  # (n, 1)
    lo, hi = rng[:, 0].clamp_min(1e-6).log()[None], rng[:, 1].log()[None]  # (1, L)
    level = ((lo - half).clamp_min(0) + (half - hi).clamp_min(0)).argmin(1)  # first best on ties
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    d2 = ((xy[:, None, :] - centre[None]) ** 2).sum(-1)
    return torch.where(strides[:, None] == levels[level][None, :], d2, torch.full_like(d2, math.inf))


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, *, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Elementwise focal loss (Lin et al., 2017) on sigmoid logits against 0/1 targets; sum it and divide by the
    number of positives. ``alpha`` weighs the positives (``1 - alpha`` the negatives); a negative ``alpha`` weighs
    neither."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def decode_boxes(xy: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """xyxy boxes from points (..., 2) and distances (l, t, r, b) (..., 4)."""
    return torch.cat([xy - ltrb[..., :2], xy + ltrb[..., 2:]], -1)


def fcos_loss(outputs: Mapping[str, torch.Tensor], xy: torch.Tensor, strides: torch.Tensor,
              targets_boxes: Sequence[torch.Tensor], targets_labels: Sequence[torch.Tensor], num_classes: int, *,
              ranges: Sequence[tuple[float, float]] | None = None, center_radius: float = 1.5, alpha: float = 0.25,
              gamma: float = 2.0) -> dict[str, torch.Tensor | int]:
    """FCOS's loss over a batch: focal + GIoU + centerness.

    - ``cls``: sigmoid focal loss over all points and classes (background points have all-zero targets), summed and
      divided by ``max(num_pos, 1)``.
    - ``box``: ``1 - GIoU`` of the decoded predicted and target boxes on the positive points, weighted by the
      centerness target and divided by the sum of those weights.
    - ``ctr``: binary cross-entropy of the centerness logits against the centerness target on the positive points,
      divided by ``max(num_pos, 1)``.

    With no positive point in the batch, ``box`` and ``ctr`` are zeros that still reach every output (so that a
    backward pass, distributed too, sees the whole graph).

    Args:
        outputs: ``{"cls": (B, A, K), "box": (B, A, 4), "ctr": (B, A)}``.
        xy: (A, 2) point centres in pixels; strides: (A,) their strides (the detector's ``points(h, w)``).
        targets_boxes: per image, (G_i, 4) xyxy boxes; targets_labels: per image, (G_i,) classes 0..K-1.
        num_classes: K.
        ranges, center_radius: see :func:`fcos_targets`.
        alpha, gamma: the focal loss's.

    Returns:
        ``loss`` (the sum of the three), ``cls``, ``box``, ``ctr`` (tensors) and ``num_pos`` (int).
    """
    cls_logits, box, ctr = _outputs(outputs, len(xy), num_classes)
    bsz = cls_logits.shape[0]
    if len(targets_boxes) != bsz or len(targets_labels) != bsz:
        raise ValueError(f"{len(targets_boxes)} box and {len(targets_labels)} label targets for a batch of {bsz}: "
                         "give one (possibly empty) tensor per image")
    xy = xy.to(box.device)
    strides = strides.to(box.device)
    per_image = [fcos_targets(xy, strides, b, lab, ranges=ranges, center_radius=center_radius)
                 for b, lab in zip(targets_boxes, targets_labels, strict=True)]
    cls_t = torch.stack([t.cls for t in per_image])  # (B, A)
    if cls_t.numel() and int(cls_t.max()) >= num_classes:
        raise ValueError(f"target labels reach {int(cls_t.max())}: expected classes 0..{num_classes - 1}")
    box_t = torch.stack([t.box for t in per_image])
    ctr_t = torch.stack([t.ctr for t in per_image])
    pos = cls_t >= 0
    num_pos = int(pos.sum())

    onehot = F.one_hot(cls_t.clamp_min(0), num_classes).to(cls_logits.dtype) * pos[..., None]
    cls_loss = sigmoid_focal_loss(cls_logits, onehot, alpha=alpha, gamma=gamma).sum() / max(num_pos, 1)
    if num_pos:
        pxy = xy[None].expand(bsz, -1, -1)[pos]
        w = ctr_t[pos]
        g = giou(decode_boxes(pxy, box[pos]), decode_boxes(pxy, box_t[pos]), aligned=True)
        box_loss = ((1 - g) * w).sum() / w.sum().clamp_min(_EPS)
        ctr_loss = F.binary_cross_entropy_with_logits(ctr[pos], w, reduction="sum") / num_pos
    else:
        box_loss = box.sum() * 0
        ctr_loss = ctr.sum() * 0
    return {"loss": cls_loss + box_loss + ctr_loss, "cls": cls_loss, "box": box_loss, "ctr": ctr_loss,
            "num_pos": num_pos}


def _outputs(outputs: Mapping[str, torch.Tensor], a: int, k: int) -> tuple[torch.Tensor, ...]:
    missing = [key for key in ("cls", "box", "ctr") if key not in outputs]
    if missing:
        raise ValueError(f"detector outputs lack {missing}: expected cls (B, A, K), box (B, A, 4), ctr (B, A)")
    cls_logits, box, ctr = outputs["cls"], outputs["box"], outputs["ctr"]
    b = cls_logits.shape[0]
    if cls_logits.shape != (b, a, k) or box.shape != (b, a, 4) or ctr.shape != (b, a):
        raise ValueError(f"detector outputs cls {tuple(cls_logits.shape)}, box {tuple(box.shape)}, ctr "
                         f"{tuple(ctr.shape)}: expected ({b}, {a}, {k}), ({b}, {a}, 4), ({b}, {a}) for {a} points "
                         f"and {k} classes")
    return cls_logits, box, ctr


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor, *, ignore_index: int = 255,
                      ohem_fraction: float | None = None, ohem_thresh: float | None = 0.7,
                      aux: Sequence[torch.Tensor] | None = None, aux_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Pixel cross-entropy, optionally with online hard example mining and auxiliary heads.

    Logits of another size than the masks are resized to them (bilinear), as BiSeNet does with its heads. With
    ``ohem_fraction`` (BiSeNet's training: 1/16 with ``ohem_thresh`` 0.7) only the hard pixels count: those whose
    probability of the right class is below ``ohem_thresh``, and at least the ``ohem_fraction`` of the counted
    pixels with the highest loss (``ohem_thresh=None``: exactly that fraction). A batch whose pixels are all ignored
    gives a zero loss that still reaches the logits.

    Args:
        logits: (B, K + 1, h, w).
        masks: (B, H, W) long, 0 background, i class i - 1, ``ignore_index`` not counted.
        ignore_index: the mask value of pixels not counted.
        ohem_fraction: keep the hardest fraction of counted pixels (in (0, 1]); None: all pixels count.
        ohem_thresh: with ``ohem_fraction``, also keep every pixel whose right-class probability is below this.
        aux: auxiliary heads' logits, each (B, K + 1, h', w'), given the same loss.
        aux_weight: the weight of each auxiliary loss (BiSeNet: 1).

    Returns:
        ``loss`` (``main + aux_weight * aux``), ``main`` and ``aux`` (the sum of the auxiliary losses, 0 without).
    """
    if ohem_fraction is not None and not 0 < ohem_fraction <= 1:
        raise ValueError(f"ohem_fraction is a fraction of pixels in (0, 1], got {ohem_fraction}")
    if ohem_thresh is not None and not 0 < ohem_thresh <= 1:
        raise ValueError(f"ohem_thresh is a probability in (0, 1], got {ohem_thresh}")
    if masks.dim() != 3:
        raise ValueError(f"masks are (B, H, W), got {tuple(masks.shape)}")

    def one(z: torch.Tensor) -> torch.Tensor:
        return _pixel_ce(z, masks, ignore_index, ohem_fraction, ohem_thresh)

    main = one(logits)
    aux_loss = sum((one(z) for z in aux), start=logits.new_zeros(())) if aux else logits.new_zeros(())
    return {"loss": main + aux_weight * aux_loss, "main": main, "aux": aux_loss}


def _pixel_ce(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int, fraction: float | None,
              thresh: float | None) -> torch.Tensor:
    if logits.dim() != 4 or logits.shape[0] != masks.shape[0]:
        raise ValueError(f"logits {tuple(logits.shape)} for masks {tuple(masks.shape)}: expected (B, K + 1, h, w)")
    if logits.shape[-2:] != masks.shape[-2:]:
        logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    masks = masks.long()
    valid = masks != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0
    loss = F.cross_entropy(logits, masks, ignore_index=ignore_index, reduction="none")[valid]
    if fraction is None:
        return loss.mean()
    n_min = max(1, int(fraction * loss.numel()))
    if thresh is not None:
        hard = loss[loss > -math.log(thresh)]
        if hard.numel() >= n_min:
            return hard.mean()
    return loss.topk(n_min).values.mean()
