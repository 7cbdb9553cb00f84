"""Dense metrics on hand-made cases: mIoU and pixel accuracy from counted pixels, box IoU and GIoU in closed form,
COCO mAP by pycocotools against values worked out by hand (101-point interpolated precision)."""

from __future__ import annotations

import math

import pytest
import torch

from chipfit.train.dense import SegMetrics, box_iou, coco_map, confusion_matrix, giou


def _pred(boxes, scores, labels) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.long)}


def _gt(boxes, labels) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.long)}


# ---- segmentation ----------------------------------------------------------------------------------------------


def test_miou_2x2_by_hand():
    # target [[0,1],[1,1]], prediction [[0,1],[0,1]]: class 0 TP 1 FP 1 -> 1/2; class 1 TP 2 FN 1 -> 2/3
    target = torch.tensor([[0, 1], [1, 1]])
    pred = torch.tensor([[0, 1], [0, 1]])
    m = SegMetrics(1)
    m.update(pred, target)
    assert m.confusion.tolist() == [[1, 0], [1, 2]]
    assert m.per_class_iou == pytest.approx({0: 0.5, 1: 2 / 3})
    assert m.miou == pytest.approx((0.5 + 2 / 3) / 2)
    assert m.pixel_accuracy == pytest.approx(3 / 4)
    fg = SegMetrics(1, include_background=False)
    fg.update(pred, target)
    assert fg.miou == pytest.approx(2 / 3)
    assert m.per_image_iou == pytest.approx([(0.5 + 2 / 3) / 2])


def test_perfect_prediction_from_logits():
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 4, (3, 8, 8), generator=g)
    logits = torch.nn.functional.one_hot(masks, 4).permute(0, 3, 1, 2).float()
    m = SegMetrics(3)
    m.update(logits, masks)
    assert m.miou == 1.0
    assert m.pixel_accuracy == 1.0
    assert m.per_image_iou == [1.0, 1.0, 1.0]


def test_ignore_index_is_ignored():
    target = torch.tensor([[0, 1], [255, 255]])
    pred = torch.tensor([[0, 1], [1, 0]])  # wrong where ignored
    m = SegMetrics(1)
    m.update(pred, target)
    assert int(m.confusion.sum()) == 2
    assert m.miou == 1.0 and m.pixel_accuracy == 1.0


def test_absent_class_excluded_from_mean():
    target = torch.tensor([[0, 1], [1, 1]])
    pred = torch.tensor([[0, 1], [0, 1]])
    m = SegMetrics(3)  # classes 2 and 3 occur in neither
    m.update(pred, target)
    iou = m.per_class_iou
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert m.miou == pytest.approx((0.5 + 2 / 3) / 2)
    # a class only predicted counts (IoU 0)
    m.update(torch.tensor([[3, 3], [3, 3]]), torch.tensor([[1, 1], [1, 1]]))
    assert m.per_class_iou[3] == 0.0
    assert not math.isnan(m.miou)


def test_accumulates_over_batches_and_per_image():
    target = torch.tensor([[[0, 1], [1, 1]], [[1, 1], [1, 1]]])
    pred = torch.tensor([[[0, 1], [0, 1]], [[1, 1], [1, 1]]])
    whole = SegMetrics(1)
    whole.update(pred, target)
    split = SegMetrics(1)
    split.update(pred[:1], target[:1])
    split.update(pred[1], target[1])
    assert torch.equal(whole.confusion, split.confusion)
    assert whole.miou == split.miou
    # image 2 holds class 1 only, predicted exactly: background absent from both -> its mean is class 1's IoU
    assert split.per_image_iou == pytest.approx([(0.5 + 2 / 3) / 2, 1.0])
    assert confusion_matrix(pred, target, 2).tolist() == whole.confusion.tolist()


def test_class_names_and_bad_input():
    m = SegMetrics(2, class_names=["cat", "dog"])
    m.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 2]]))
    assert list(m.per_class_iou) == ["background", "cat", "dog"]
    with pytest.raises(ValueError, match="neither a label"):
        m.update(torch.tensor([[0]]), torch.tensor([[7]]))
    with pytest.raises(ValueError, match="differ in shape"):
        m.update(torch.tensor([[0, 1]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="no labelled pixels"):
        SegMetrics(2).miou  # noqa: B018


# ---- boxes -----------------------------------------------------------------------------------------------------


def test_box_iou_and_giou_closed_form():
    a = torch.tensor([[10.0, 10, 20, 20]])
    b = torch.tensor([[15.0, 10, 25, 20], [10, 10, 20, 20], [30, 10, 40, 20]])
    # 5 px shift: 50 / 150; same box: 1; 10 px gap: 0
    assert box_iou(a, b)[0].tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    # GIoU: hull of the shifted pair is 15x10 = union -> 1/3; the gap pair: 0 - (300 - 200) / 300
    assert giou(a, b)[0].tolist() == pytest.approx([1 / 3, 1.0, -1 / 3])
    assert box_iou(a.expand(3, 4), b, aligned=True).tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert box_iou(a, b).shape == (1, 3) and box_iou(torch.zeros(0, 4), b).shape == (0, 3)


# ---- COCO mAP --------------------------------------------------------------------------------------------------

GT = [_gt([[10, 10, 20, 20]], [0])]


def test_map_perfect():
    gts = [_gt([[10, 10, 20, 20], [30, 30, 60, 50]], [0, 1]), _gt([], []), _gt([[0, 0, 5, 8]], [1])]
    preds = [_pred(g["boxes"].tolist(), [0.9] * len(g["labels"]), g["labels"].tolist()) for g in gts]
    r = coco_map(preds, gts, num_classes=2, image_size=(64, 64))
    assert r["map"] == pytest.approx(1.0) and r["map50"] == pytest.approx(1.0) and r["map75"] == pytest.approx(1.0)
    assert r["per_class_ap50"] == pytest.approx({0: 1.0, 1: 1.0})
    assert [p["matched"] for p in r["per_image"]] == [2, 0, 1]
    assert [p["num_gt"] for p in r["per_image"]] == [2, 0, 1]


def test_map_shifted_box():
    # shifted 5 px: IoU 1/3 < 0.5 -> nothing found
    r = coco_map([_pred([[15, 10, 25, 20]], [0.9], [0])], GT, num_classes=1)
    assert r["map50"] == 0.0 and r["map"] == 0.0
    assert r["per_image"][0]["matched"] == 0
    # shifted 2 px: IoU 80/120 = 2/3 -> found at thresholds .50 .55 .60 .65, missed from .70: mAP 4/10
    r = coco_map([_pred([[12, 10, 22, 20]], [0.9], [0])], GT, num_classes=1)
    assert r["map50"] == pytest.approx(1.0)
    assert r["map75"] == 0.0
    assert r["map"] == pytest.approx(0.4)
    assert r["per_image"][0] == {"image": 0, "num_gt": 1, "num_det": 1, "matched": 1}


def test_map_false_positives():
    tp, fp = [10, 10, 20, 20], [50, 50, 60, 60]
    # a weaker false positive comes after recall is complete: AP stays 1
    assert coco_map([_pred([tp, fp], [0.9, 0.5], [0, 0])], GT, num_classes=1)["map50"] == pytest.approx(1.0)
    # a stronger one first: recall 0 then 1 at precision 1/2; the interpolated precision is 1/2 at all 101 points
    assert coco_map([_pred([tp, fp], [0.5, 0.9], [0, 0])], GT, num_classes=1)["map50"] == pytest.approx(0.5)
    # two boxes found by scores .9 and .7 around a .8 false positive: precision 1 up to recall .5 (51 recall
    # points, 0.00..0.50), then 2/3 (50 points): AP = (51 + 50 * 2/3) / 101
    gts = [_gt([[10, 10, 20, 20], [40, 40, 60, 60]], [0, 0])]
    r = coco_map([_pred([[10, 10, 20, 20], [80, 80, 90, 90], [40, 40, 60, 60]], [0.9, 0.8, 0.7], [0, 0, 0])],
                 gts, num_classes=1)
    assert r["map50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    # a false positive of another class is no match, and the class without ground truth has no AP
    r = coco_map([_pred([tp], [0.9], [1])], GT, num_classes=2)
    assert r["map50"] == 0.0 and math.isnan(r["per_class_ap50"][1])


def test_map_empty_images_and_thresholds():
    none = _pred([], [], [])
    r = coco_map([none, none], [GT[0], _gt([], [])], num_classes=1)
    assert r["map"] == 0.0
    # images without ground truth and with detections only add false positives
    r = coco_map([_pred([[10, 10, 20, 20]], [0.9], [0]), _pred([[0, 0, 9, 9]], [0.2], [0])],
                 [GT[0], _gt([], [])], num_classes=1)
    assert r["map50"] == pytest.approx(1.0)  # the false positive scores below the true one
    assert r["per_image"][1] == {"image": 1, "num_gt": 0, "num_det": 0, "matched": 0}  # 0.2 < 0.3
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        coco_map([none], [_gt([], [])], num_classes=1)
    with pytest.raises(ValueError, match="outside the classes"):
        coco_map([_pred([[0, 0, 1, 1]], [0.9], [3])], GT, num_classes=1)


def test_map_keeps_pycocotools_quiet(capsys):
    coco_map([_pred([[10, 10, 20, 20]], [0.9], [0])], GT, num_classes=1)
    assert capsys.readouterr().out == ""
