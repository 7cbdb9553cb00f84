"""FCOS's outputs against hand-made cases: IoU and NMS in closed form, decode on constructed outputs (a box
suppressed above the IoU threshold, one kept below it, classes apart), points() in the order of the head's rows, boxes
in input pixels, the class prior."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from chipfit.models import create_model
from chipfit.models.dense import batched_nms, box_iou, nms


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_box_iou_closed_form():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 0, 5]])
    b = torch.tensor([[5.0, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    iou = box_iou(a, b)
    torch.testing.assert_close(iou[0], torch.tensor([50 / 150, 1.0, 0.0]))
    assert (iou[1] == 0).all()  # an empty box overlaps nothing (no 0/0)


def test_nms_suppresses_above_the_threshold_only():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10]])  # IoU with the first: 9/11, 1/3
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.6).tolist() == [0, 2]
    assert nms(boxes, scores, 0.9).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.3).tolist() == [0]
    labels = torch.tensor([0, 1, 0])  # the near-duplicate of another class survives
    assert batched_nms(boxes, scores, labels, 0.6).tolist() == [0, 1, 2]
    assert batched_nms(boxes[:0], scores[:0], labels[:0], 0.6).numel() == 0


def test_decode_on_hand_made_outputs():
    model = create_model("fcos_quadranet_s", num_classes=3).eval()
    xy, strides = model.points(96, 96)
    a = xy.shape[0]
    cls = torch.full((1, a, 3), -20.0)
    box = torch.ones(1, a, 4)
    ctr = torch.full((1, a), 20.0)  # centerness 1: scores are the class probabilities

    def put(i: int, label: int, p: float, x1: float, y1: float, x2: float, y2: float) -> None:
        cls[0, i, label] = _logit(p * p)  # score sqrt(sigmoid(cls) * sigmoid(ctr)) = p
        x, y = xy[i]
        box[0, i] = torch.tensor([x - x1, y - y1, x2 - x, y2 - y])

    i, j, k, m = 30, 31, 32, 33  # four stride-8 locations in row 2
    put(i, 0, 0.95, 10, 10, 30, 30)  # the best box of class 0
    put(j, 0, 0.90, 12, 10, 32, 30)  # IoU 360 / 440 = 0.82 with it: suppressed at 0.6
    put(k, 0, 0.80, 20, 10, 40, 30)  # IoU 200 / 600 = 0.33: kept
    put(m, 1, 0.85, 10, 10, 30, 30)  # the same box as i, another class: kept
    dets = model.decode(cls, box, ctr, score_threshold=0.05, iou_threshold=0.6)
    assert len(dets) == 1
    d = dets[0]
    expected = torch.tensor([[10.0, 10, 30, 30], [10, 10, 30, 30], [20, 10, 40, 30]])
    torch.testing.assert_close(d["boxes"], expected)
    assert d["labels"].tolist() == [0, 1, 0]
    score = torch.sqrt(torch.sigmoid(cls[0, [i, m, k], [0, 1, 0]]) * torch.sigmoid(ctr[0, [i, m, k]]))
    torch.testing.assert_close(d["scores"], score)
    assert d["scores"].tolist() == sorted(d["scores"].tolist(), reverse=True)

    looser = model.decode(cls, box, ctr, iou_threshold=0.9)[0]  # 0.82 < 0.9: the near-duplicate stays
    assert len(looser["boxes"]) == 4
    assert len(model.decode(cls, box, ctr, max_detections=2)[0]["boxes"]) == 2
    strict = model.decode(cls, box, ctr, score_threshold=0.82)[0]  # 0.80 falls below; 0.90 is suppressed
    assert strict["labels"].tolist() == [0, 1]

    wide = box.clone()
    wide[0, i] = torch.tensor([100.0, 100, 100, 100])  # boxes are clipped to the image
    assert model.decode(cls, wide, ctr)[0]["boxes"][0].tolist() == [0.0, 0.0, 96.0, 96.0]
    with pytest.raises(ValueError, match="pass image_size"):
        model.decode(cls[:, :-1], box[:, :-1], ctr[:, :-1])


class _Coordinates(nn.Module):
    """A neck replaced by maps that name each location: channel 0 its column, 1 its row, 2 its level."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for level, f in enumerate(feats):
            b, _, h, w = f.shape
            rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            m = torch.zeros(b, self.channels, h, w)
            m[:, 0], m[:, 1], m[:, 2] = cols, rows, level
            out.append(m)
        return out


@pytest.mark.parametrize("size", [(96, 96), (72, 104)])
def test_points_follow_the_head_order(size):
    model = create_model("fcos_mobilenetv2_s", num_classes=3).eval()
    c = model.config.channels
    model.neck = _Coordinates(c)
    model.head.cls_tower = nn.Identity()
    pick = nn.Conv2d(c, 3, 1, bias=False)  # class logit q = channel q: the location's column, row and level
    with torch.no_grad():
        pick.weight.zero_()
        for q in range(3):
            pick.weight[q, q] = 1.0
    model.head.cls_logits = pick
    h, w = size
    with torch.no_grad():
        cls, _, _ = model(torch.zeros(1, 1, h, w))
    xy, strides = model.points(h, w)
    col, row, level = cls[0].unbind(-1)
    level_strides = torch.tensor(model.strides, dtype=torch.float32)[level.long()]
    torch.testing.assert_close(strides, level_strides)
    torch.testing.assert_close(xy, torch.stack(((col + 0.5) * strides, (row + 0.5) * strides), 1))


@pytest.mark.parametrize("name", ["fcos_quadranet_s", "fcos_mobilenetv2_s", "fcos_shufflenetv2_s"])
def test_points_count_the_rows_on_odd_inputs(name):
    """Floor-halving (metaformer) and ceil-halving (MobileNetV2, ShuffleNetV2) backbones on odd sides: the PAN's
    stride-2 convs are cropped to the coarser map, and points() says the same sizes."""
    model = create_model(name).eval()
    with torch.no_grad():
        cls, box, ctr = model(torch.randn(1, 1, 101, 77))
    assert cls.shape[1] == box.shape[1] == ctr.shape[1] == model.points(101, 77)[0].shape[0]


def test_boxes_are_in_pixels_and_the_class_prior_is_set():
    model = create_model("fcos_convnext_s").eval()
    assert torch.sigmoid(model.head.cls_logits.bias).allclose(torch.tensor(0.01))
    with torch.no_grad():
        model.head.box_pred.weight.zero_()
        model.head.box_pred.bias.fill_(1.0)
        model.head.scales.copy_(torch.tensor([1.0, 2.0, 0.5]))
        _, box, _ = model(torch.randn(1, 1, 96, 96))
    _, strides = model.points(96, 96)
    scale = torch.tensor([1.0, 2.0, 0.5])[(strides.log2() - 3).long()]
    torch.testing.assert_close(box[0], (strides * scale)[:, None].expand(-1, 4))
