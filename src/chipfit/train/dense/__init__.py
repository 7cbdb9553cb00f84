"""Training dense predictors: detection (FCOS targets and losses, COCO mAP) and segmentation (cross-entropy with
OHEM, mIoU), and the two as tasks of the training engine (``tasks``).

Boxes are float (k, 4) xyxy in pixels with foreground labels 0..K-1; masks are long (H, W) or (B, H, W) with 0 for
background, i for class i - 1 and 255 ignored; segmentation logits are (B, K + 1, H, W). pycocotools is imported
only when :func:`coco_map` runs."""

from chipfit.train.dense.losses import (
    FcosTargets,
    decode_boxes,
    default_ranges,
    fcos_loss,
    fcos_targets,
    segmentation_loss,
    sigmoid_focal_loss,
)
from chipfit.train.dense.metrics import SegMetrics, box_iou, coco_map, confusion_matrix, giou
from chipfit.train.dense.tasks import DetectTask, SegmentTask, make_task

__all__ = ["DetectTask", "FcosTargets", "SegMetrics", "SegmentTask", "box_iou", "coco_map", "confusion_matrix",
           "decode_boxes", "default_ranges", "fcos_loss", "fcos_targets", "giou", "make_task", "segmentation_loss",
           "sigmoid_focal_loss"]
