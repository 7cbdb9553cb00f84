"""The registered segmenters and detectors: each fills a dense config and calls :func:`build_dense`.

Small ones (``*_s``) are for 96x96 grey scenes with 10 classes (segmentation adds a background channel), on the
dense backbones of :mod:`chipfit.models.dense.backbone` whose four families are balanced to similar MACs; their
heads are the same within a task, so the backbones are what differs. Large ones are for the resolutions of the
common benchmarks: 1024x2048 RGB with 19 classes (Cityscapes) for segmentation, 384x1280 RGB with 3 classes (KITTI:
car, pedestrian, cyclist) for detection, on the zoo's ImageNet backbones. Every constructor takes ``num_classes``,
``in_chans`` and ``input_size`` (an int for a square, or (height, width)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from chipfit.models._registry import register_model
from chipfit.models.dense._common import as_hw
from chipfit.models.dense.backbone import dense_backbone
from chipfit.models.dense.build import build_dense
from chipfit.models.dense.detect import FCOSConfig
from chipfit.models.dense.segment import BiSeNetConfig, FastSCNNConfig

SMALL = (1, 1, 96, 96)
CITYSCAPES = (1, 3, 1024, 2048)
KITTI = (1, 3, 384, 1280)
# The small heads, shared by the four backbones of each task.
SMALL_BISENET = {"spatial_channels": (16, 32, 64), "context_channels": 64, "fusion_channels": 64, "head_channels": 64}
SMALL_FCOS = {"channels": 48, "head_convs": 2, "norm_groups": 16}
# Cityscapes-like: the BiSeNet paper's path widths (spatial 64/64/128, context 128, fusion 256) and a 128-wide head;
# KITTI-like: FCOS at 128 wide with three-conv towers.
LARGE_BISENET = {"spatial_channels": (64, 64, 128), "context_channels": 128, "fusion_channels": 256,
                 "head_channels": 128}
LARGE_FCOS = {"channels": 128, "head_convs": 3, "norm_groups": 32}


def _bisenet(name: str, backbone: str, num_classes: int, in_chans: int, input_size: int | Sequence[int],
             widths: dict) -> nn.Module:
    hw = as_hw(input_size)
    cfg = BiSeNetConfig(dense_backbone(backbone, in_chans=in_chans, input_size=min(hw)), num_classes, in_chans, hw,
                        name=name, **widths)
    return build_dense(cfg)


def _fcos(name: str, backbone: str, num_classes: int, in_chans: int, input_size: int | Sequence[int],
          widths: dict) -> nn.Module:
    hw = as_hw(input_size)
    cfg = FCOSConfig(dense_backbone(backbone, in_chans=in_chans, input_size=min(hw)), num_classes, in_chans, hw,
                     name=name, **widths)
    return build_dense(cfg)


# --- segmentation ---------------------------------------------------------------------------------------------------


@register_model("bisenet_quadranet_s", input_shape=SMALL, family="bisenet", task="segment")
def bisenet_quadranet_s(*, num_classes: int = 10, in_chans: int = 1, input_size: int | Sequence[int] = 96) -> nn.Module:
    """BiSeNet on QuadraNet (stride-4 stem, C=24, depths [1,1,3,1], 5x5 quadratic) for 96x96 scenes."""
    return _bisenet("bisenet_quadranet_s", "quadranet_s", num_classes, in_chans, input_size, SMALL_BISENET)


@register_model("bisenet_convnext_s", input_shape=SMALL, family="bisenet", task="segment")
def bisenet_convnext_s(*, num_classes: int = 10, in_chans: int = 1, input_size: int | Sequence[int] = 96) -> nn.Module:
    """BiSeNet on ConvNeXt (stride-4 stem, C=24, depths [1,1,3,1], 7x7 depthwise) for 96x96 scenes."""
    return _bisenet("bisenet_convnext_s", "convnext_s", num_classes, in_chans, input_size, SMALL_BISENET)


@register_model("bisenet_mobilenetv2_s", input_shape=SMALL, family="bisenet", task="segment")
def bisenet_mobilenetv2_s(*, num_classes: int = 10, in_chans: int = 1,
                          input_size: int | Sequence[int] = 96) -> nn.Module:
    """BiSeNet on MobileNetV2 0.5 (stride-2 stem, the paper's stages) for 96x96 scenes."""
    return _bisenet("bisenet_mobilenetv2_s", "mobilenetv2_s", num_classes, in_chans, input_size, SMALL_BISENET)


@register_model("bisenet_shufflenetv2_s", input_shape=SMALL, family="bisenet", task="segment")
def bisenet_shufflenetv2_s(*, num_classes: int = 10, in_chans: int = 1,
                           input_size: int | Sequence[int] = 96) -> nn.Module:
    """BiSeNet on ShuffleNetV2 (stem + max-pool, widths 96/192/384) for 96x96 scenes."""
    return _bisenet("bisenet_shufflenetv2_s", "shufflenetv2_s", num_classes, in_chans, input_size, SMALL_BISENET)


@register_model("bisenet_mobilenetv2", input_shape=CITYSCAPES, family="bisenet", task="segment")
def bisenet_mobilenetv2(*, num_classes: int = 19, in_chans: int = 3,
                        input_size: int | Sequence[int] = (1024, 2048)) -> nn.Module:
    """BiSeNet on MobileNetV2 1.0, the paper's head widths, for 1024x2048 street scenes (Cityscapes)."""
    return _bisenet("bisenet_mobilenetv2", "mobilenetv2_100", num_classes, in_chans, input_size, LARGE_BISENET)


@register_model("bisenet_quadranet", input_shape=CITYSCAPES, family="bisenet", task="segment")
def bisenet_quadranet(*, num_classes: int = 19, in_chans: int = 3,
                      input_size: int | Sequence[int] = (1024, 2048)) -> nn.Module:
    """BiSeNet on QuadraNet36-XXS, the paper's head widths, for 1024x2048 street scenes (Cityscapes)."""
    return _bisenet("bisenet_quadranet", "quadranet36_xxs", num_classes, in_chans, input_size, LARGE_BISENET)


def _fastscnn(name: str, bins: tuple[int, ...], num_classes: int, in_chans: int,
              input_size: int | Sequence[int]) -> nn.Module:
    """Fast-SCNN with those of ``bins`` that divide the stride-32 map at ``input_size`` (1 always does)."""
    hw = as_hw(input_size)
    h, w = FastSCNNConfig(input_hw=hw, pool_bins=(1,)).low_res_size()
    fit = tuple(b for b in bins if h % b == 0 and w % b == 0)
    return build_dense(FastSCNNConfig(num_classes, in_chans, hw, pool_bins=fit, name=name))


@register_model("fastscnn_s", input_shape=SMALL, family="fastscnn", task="segment")
def fastscnn_s(*, num_classes: int = 10, in_chans: int = 1, input_size: int | Sequence[int] = 96) -> nn.Module:
    """Fast-SCNN, the paper's widths, pooling bins 1/3 (the 3x3 stride-32 map), for 96x96 scenes."""
    return _fastscnn("fastscnn_s", (1, 3), num_classes, in_chans, input_size)


@register_model("fastscnn", input_shape=CITYSCAPES, family="fastscnn", task="segment")
def fastscnn(*, num_classes: int = 19, in_chans: int = 3,
             input_size: int | Sequence[int] = (1024, 2048)) -> nn.Module:
    """Fast-SCNN, the paper's widths, pooling bins 1/2/4/8, for 1024x2048 street scenes (Cityscapes)."""
    return _fastscnn("fastscnn", (1, 2, 4, 8), num_classes, in_chans, input_size)


# --- detection ------------------------------------------------------------------------------------------------------


@register_model("fcos_quadranet_s", input_shape=SMALL, family="fcos", task="detect")
def fcos_quadranet_s(*, num_classes: int = 10, in_chans: int = 1, input_size: int | Sequence[int] = 96) -> nn.Module:
    """FCOS + PAN on QuadraNet (stride-4 stem, C=24, depths [1,1,3,1], 5x5 quadratic) for 96x96 scenes."""
    return _fcos("fcos_quadranet_s", "quadranet_s", num_classes, in_chans, input_size, SMALL_FCOS)


@register_model("fcos_convnext_s", input_shape=SMALL, family="fcos", task="detect")
def fcos_convnext_s(*, num_classes: int = 10, in_chans: int = 1, input_size: int | Sequence[int] = 96) -> nn.Module:
    """FCOS + PAN on ConvNeXt (stride-4 stem, C=24, depths [1,1,3,1], 7x7 depthwise) for 96x96 scenes."""
    return _fcos("fcos_convnext_s", "convnext_s", num_classes, in_chans, input_size, SMALL_FCOS)


@register_model("fcos_mobilenetv2_s", input_shape=SMALL, family="fcos", task="detect")
def fcos_mobilenetv2_s(*, num_classes: int = 10, in_chans: int = 1, input_size: int | Sequence[int] = 96) -> nn.Module:
    """FCOS + PAN on MobileNetV2 0.5 (stride-2 stem, the paper's stages) for 96x96 scenes."""
    return _fcos("fcos_mobilenetv2_s", "mobilenetv2_s", num_classes, in_chans, input_size, SMALL_FCOS)


@register_model("fcos_shufflenetv2_s", input_shape=SMALL, family="fcos", task="detect")
def fcos_shufflenetv2_s(*, num_classes: int = 10, in_chans: int = 1,
                        input_size: int | Sequence[int] = 96) -> nn.Module:
    """FCOS + PAN on ShuffleNetV2 (stem + max-pool, widths 96/192/384) for 96x96 scenes."""
    return _fcos("fcos_shufflenetv2_s", "shufflenetv2_s", num_classes, in_chans, input_size, SMALL_FCOS)


@register_model("fcos_mobilenetv2", input_shape=KITTI, family="fcos", task="detect")
def fcos_mobilenetv2(*, num_classes: int = 3, in_chans: int = 3,
                     input_size: int | Sequence[int] = (384, 1280)) -> nn.Module:
    """FCOS + PAN (128 wide, three-conv towers, GroupNorm) on MobileNetV2 1.0 for 384x1280 road scenes (KITTI)."""
    return _fcos("fcos_mobilenetv2", "mobilenetv2_100", num_classes, in_chans, input_size, LARGE_FCOS)


@register_model("fcos_quadranet", input_shape=KITTI, family="fcos", task="detect")
def fcos_quadranet(*, num_classes: int = 3, in_chans: int = 3,
                   input_size: int | Sequence[int] = (384, 1280)) -> nn.Module:
    """FCOS + PAN (128 wide, three-conv towers, GroupNorm) on QuadraNet36-XXS for 384x1280 road scenes (KITTI)."""
    return _fcos("fcos_quadranet", "quadranet36_xxs", num_classes, in_chans, input_size, LARGE_FCOS)
