"""Object detection: FCOS (Tian et al., ICCV 2019), anchor-free, on any zoo backbone with a PAN neck.

Backbone maps at strides 8/16/32 (``FCOSConfig.strides``) enter an FPN with a PAN bottom-up path (Liu et al., CVPR
2018): lateral 1x1 convs to the neck width; top-down, each coarser map upsampled (nearest) and added to the finer
one; a 3x3 conv-norm-ReLU smooths each sum; bottom-up, each finer output passes a 3x3 stride-2 conv-norm-ReLU and is
added to the next coarser one. One head, shared by all levels: a classification tower and a box tower of
``head_convs`` 3x3 conv-norm-ReLU each (GroupNorm or BatchNorm), then 3x3 convs to the class logits (bias set to the
prior 0.01, as FCOS and RetinaNet do), to the four distances (left, top, right, bottom) from the location to the box
sides, and to centerness (on the box tower, FCOS's later placement). Distances are made positive and put in input
pixels: ``relu(scale_l * d) * stride_l``, with one learned scale per level (FCOS's normalised regression targets).

``forward`` returns ``(cls, box, ctr)``: (B, A, K) class logits, (B, A, 4) ltrb distances in input pixels and (B, A)
centerness logits, over all levels concatenated, finest first, each level row-major; A = sum of H_l * W_l. It has no
Python control flow on data and no ``.item()``, so it exports; :meth:`FCOS.points` gives the location of each of the A
rows and :meth:`FCOS.decode` turns outputs into boxes, outside the graph (score threshold, class-wise NMS in torch).

A detection score is ``sqrt(sigmoid(cls) * sigmoid(ctr))``: the class probability weighted by centerness, a
geometric mean so it stays on a probability's scale for the threshold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.models.config import ModelConfig
from chipfit.models.dense._common import check_common, config_from_dict, fit_backbone, init_convs, resize, tuples
from chipfit.models.dense.backbone import Backbone, feature_taps

NORMS = ("gn", "bn")


@dataclass(frozen=True)
class FCOSConfig:
    """FCOS with a PAN neck (see the module docstring); the widths default to the paper's (256, four convs, GN 32).

    Attributes:
        backbone: any zoo family config with maps at ``strides``; its ``in_chans`` and ``input_size`` are set from
            this config (and ``num_classes`` to 1: its classifier is not built).
        num_classes: object classes K (sigmoid per class; no background channel).
        in_chans: input channels.
        input_hw: the (height, width) the network is meant for (an int means a square).
        strides: the backbone strides the neck takes, finest first.
        channels: width of the neck and the head.
        head_convs: 3x3 conv-norm-ReLU layers in each head tower.
        norm: ``gn`` (GroupNorm, FCOS) or ``bn`` (BatchNorm, folds into the convs for deployment).
        norm_groups: GroupNorm's groups; must divide ``channels``.
        depthwise: make the neck's and towers' 3x3 convs depthwise-separable (depthwise 3x3 + norm + ReLU, 1x1 +
            norm + ReLU), as mobile detectors do.
        prior: the initial foreground probability of the class logits.
        name: a label (the registry name when built from the registry).
    """

    backbone: ModelConfig
    num_classes: int = 80
    in_chans: int = 3
    input_hw: tuple[int, int] = (800, 1344)
    strides: tuple[int, ...] = (8, 16, 32)
    channels: int = 256
    head_convs: int = 4
    norm: str = "gn"
    norm_groups: int = 32
    depthwise: bool = False
    prior: float = 0.01
    name: str = ""

    def __post_init__(self):
        check_common(self)
        tuples(self, "strides")
        if not self.strides or list(self.strides) != sorted(set(self.strides)):
            raise ValueError(f"strides must be one or more rising strides, got {self.strides}")
        if self.channels < 1 or self.head_convs < 0:
            raise ValueError(f"channels must be >= 1 and head_convs >= 0, got {self.channels}, {self.head_convs}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.norm == "gn" and (self.norm_groups < 1 or self.channels % self.norm_groups):
            raise ValueError(f"GroupNorm: norm_groups {self.norm_groups} must divide channels {self.channels}")
        if not 0 < self.prior < 1:
            raise ValueError(f"prior must lie in (0, 1), got {self.prior}")
        object.__setattr__(self, "backbone", fit_backbone(self.backbone, self.in_chans, self.input_hw))
        feature_taps(self.backbone, self.strides)

    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_chans, *self.input_hw)

    def replace(self, **changes: Any) -> FCOSConfig:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": "fcos", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FCOSConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        return config_from_dict(cls, "fcos", d)


def _norm(cfg: FCOSConfig, c: int) -> nn.Module:
    return nn.GroupNorm(cfg.norm_groups, c) if cfg.norm == "gn" else nn.BatchNorm2d(c)


def conv_norm_relu(cfg: FCOSConfig, stride: int = 1) -> nn.Sequential:
    """A 3x3 conv-norm-ReLU of the neck's width (depthwise-separable when ``cfg.depthwise``)."""
    c = cfg.channels
    if cfg.depthwise:
        return nn.Sequential(nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), _norm(cfg, c), nn.ReLU(inplace=True),
                             nn.Conv2d(c, c, 1, bias=False), _norm(cfg, c), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(c, c, 3, stride, 1, bias=False), _norm(cfg, c), nn.ReLU(inplace=True))


class PAFPN(nn.Module):
    """FPN (lateral 1x1, top-down nearest upsampling + add, 3x3 smoothing) with PAN's bottom-up path (3x3 stride-2
    conv + add). Takes and returns one map per level, finest first; the outputs keep the inputs' sizes."""

    def __init__(self, cfg: FCOSConfig, in_channels: tuple[int, ...]):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, cfg.channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(conv_norm_relu(cfg) for _ in in_channels)
        self.down = nn.ModuleList(conv_norm_relu(cfg, stride=2) for _ in in_channels[1:])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + resize(lat[i + 1], lat[i], "nearest")
        p = [smooth(t) for smooth, t in zip(self.smooth, lat, strict=True)]
        out = [p[0]]
        for down, coarse in zip(self.down, p[1:], strict=True):
            d = down(out[-1])
            if d.shape[-2:] != coarse.shape[-2:]:  # a floor-halving backbone on an odd side: the conv's ceil is 1 more
                d = d[..., :coarse.shape[-2], :coarse.shape[-1]]
            out.append(coarse + d)
        return out


class FCOSHead(nn.Module):
    """The head shared by all levels: class and box towers, class / ltrb / centerness predictors, one box scale per
    level."""

    def __init__(self, cfg: FCOSConfig):
        super().__init__()
        c = cfg.channels
        self.strides = cfg.strides
        self.cls_tower = nn.Sequential(*(conv_norm_relu(cfg) for _ in range(cfg.head_convs)))
        self.box_tower = nn.Sequential(*(conv_norm_relu(cfg) for _ in range(cfg.head_convs)))
        self.cls_logits = nn.Conv2d(c, cfg.num_classes, 3, padding=1)
        self.box_pred = nn.Conv2d(c, 4, 3, padding=1)
        self.ctr_pred = nn.Conv2d(c, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(cfg.strides)))
        init_convs(self)
        for m in self.modules():  # FCOS: N(0, 0.01) for the head's convs
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - cfg.prior) / cfg.prior))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cls, box, ctr = [], [], []
        for i, (f, stride) in enumerate(zip(feats, self.strides, strict=True)):
            t = self.box_tower(f)
            cls.append(self.cls_logits(self.cls_tower(f)).flatten(2).transpose(1, 2))
            box.append((F.relu(self.box_pred(t) * self.scales[i]) * stride).flatten(2).transpose(1, 2))
            ctr.append(self.ctr_pred(t).flatten(1))
        return torch.cat(cls, 1), torch.cat(box, 1), torch.cat(ctr, 1)


class FCOS(nn.Module):
    """FCOS built from an :class:`FCOSConfig` (kept in ``.config``); see the module docstring for the outputs."""

    output_names = ("cls", "box", "ctr")  # what an exported graph calls forward's three outputs

    def __init__(self, cfg: FCOSConfig):
        super().__init__()
        self.config = cfg
        self.strides = cfg.strides
        self.num_classes = cfg.num_classes
        self.backbone = Backbone(cfg.backbone, cfg.strides)
        self.neck = PAFPN(cfg, self.backbone.out_channels)
        init_convs(self.neck)
        self.head = FCOSHead(cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.neck(self.backbone(x)))

    def points(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The location of each output row on a ``height`` x ``width`` input: ``xy`` (A, 2), pixel centres
        ``((j + 0.5) * s, (i + 0.5) * s)`` of row i, column j at stride s, and ``strides`` (A,), in the order of
        ``forward``'s A (levels finest first, each row-major)."""
        xy, strides = [], []
        for (h, w), s in zip(self.backbone.feature_sizes(height, width), self.strides, strict=True):
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            xy.append(torch.stack(((xs.flatten() + 0.5) * s, (ys.flatten() + 0.5) * s), dim=1))
            strides.append(torch.full((h * w,), float(s)))
        return torch.cat(xy).float(), torch.cat(strides)

    @torch.no_grad()
    def decode(self, cls: torch.Tensor, box: torch.Tensor, ctr: torch.Tensor, *, score_threshold: float = 0.05,
               iou_threshold: float = 0.6, max_detections: int = 100, pre_nms_top_k: int = 1000,
               image_size: tuple[int, int] | None = None) -> list[dict[str, torch.Tensor]]:
        """Boxes from ``forward``'s outputs, per image: scores above the threshold, class-wise NMS, the best kept.

        Args:
            cls, box, ctr: ``forward``'s outputs, (B, A, K), (B, A, 4), (B, A).
            score_threshold: keep (location, class) pairs scoring above this (score: see the module docstring).
            iou_threshold: NMS suppresses a box overlapping a better one of its class by IoU above this.
            max_detections: boxes kept per image after NMS.
            pre_nms_top_k: candidates per image entering NMS (the best-scoring ones).
            image_size: the input's (H, W); default the config's ``input_hw``. Boxes are clipped to it.

        Returns:
            One dict per image: ``boxes`` (n, 4) x1 y1 x2 y2 in input pixels, ``scores`` (n,), ``labels`` (n,) class
            indices, best first.
        """
        h, w = image_size or self.config.input_hw
        xy, _ = self.points(h, w)
        a = xy.shape[0]
        if cls.dim() != 3 or box.shape != (*cls.shape[:2], 4) or ctr.shape != cls.shape[:2] or cls.shape[1] != a:
            raise ValueError(f"decode expects cls (B, {a}, K), box (B, {a}, 4), ctr (B, {a}) for a {h}x{w} input, got "
                             f"{tuple(cls.shape)}, {tuple(box.shape)}, {tuple(ctr.shape)}; pass image_size=(H, W) "
                             "for another input size")
        xy = xy.to(box)
        scores = torch.sqrt(cls.sigmoid() * ctr.sigmoid().unsqueeze(-1))
        out = []
        for s, d in zip(scores, box, strict=True):
            keep = s > score_threshold
            loc, labels = keep.nonzero(as_tuple=True)
            sc = s[keep]
            if sc.numel() > pre_nms_top_k:
                sc, top = sc.topk(pre_nms_top_k)
                loc, labels = loc[top], labels[top]
            p, dist = xy[loc], d[loc]
            boxes = torch.stack((p[:, 0] - dist[:, 0], p[:, 1] - dist[:, 1], p[:, 0] + dist[:, 2],
                                 p[:, 1] + dist[:, 3]), dim=1)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            idx = batched_nms(boxes, sc, labels, iou_threshold)[:max_detections]
            out.append({"boxes": boxes[idx], "scores": sc[idx], "labels": labels[idx]})
        return out


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), x1 y1 x2 y2: (n, m); 0 for empty boxes."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(a.dtype).tiny), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, best first. A box is suppressed when its IoU with
    a kept, better-scoring box exceeds ``iou_threshold``."""
    order = scores.argsort(descending=True, stable=True)
    over = box_iou(boxes[order], boxes[order]) > iou_threshold
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):  # at most pre_nms_top_k boxes, outside any exported graph
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-wise NMS: boxes of different labels never suppress each other (each class is shifted apart)."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    shift = labels.to(boxes) * (boxes.max() - boxes.min() + 1)
    return nms(boxes + shift[:, None], scores, iou_threshold)
