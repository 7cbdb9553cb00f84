"""MobileNetV2 (Sandler et al., CVPR 2018): inverted residuals with linear bottlenecks.

Stem 3x3 conv stride 2 (32 channels x width), seven stages from the paper's table (expansion t, channels c, blocks
n, stride s), a 1x1 conv to 1280 channels, pool, linear. Widths are multiples of 8 (the paper's rounding).
MobileNetV2 1.0: 3.5M params / 300M MACs at 224x224.

The small variants (``mobilenetv2_s28``, ``mobilenetv2_s32``) are MobileNetV2 0.5 with a stride-1 stem and the
paper's stage strides: four stride-2 stages take 28x28 to 2x2 (maps 28/14/7/4/2, 32/16/8/4/2).
"""

from __future__ import annotations

from chipfit.models._registry import register_model
from chipfit.models.build import Network, build_model
from chipfit.models.config import BlockConfig, ModelConfig, StageConfig

# (expansion t, channels c, blocks n, stride s), the paper's Table 2
MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor``, never more than 10% down (the MobileNet papers' rounding)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenetv2(name: str, width: float, *, num_classes: int = 1000, in_chans: int = 3, input_size: int = 224,
                stem_stride: int = 2) -> Network:
    """MobileNetV2 with width multiplier ``width`` (stage widths rounded to multiples of 8)."""
    stages = tuple(StageConfig(n, make_divisible(c * width), BlockConfig("mbv2", 3, expand_ratio=t), s)
                   for t, c, n, s in MOBILENETV2_STAGES)
    cfg = ModelConfig("mobilenetv2", stages, num_classes, in_chans, stem_kernel=3, stem_stride=stem_stride,
                      stem_channels=make_divisible(32 * width), head_channels=make_divisible(1280 * max(1.0, width)),
                      input_size=input_size, name=name)
    return build_model(cfg)


@register_model("mobilenetv2_100", family="mobilenetv2")
def mobilenetv2_100(*, num_classes: int = 1000, in_chans: int = 3) -> Network:
    """MobileNetV2 1.0: stem 3x3 stride 2, stages 16-320, head 1280."""
    return mobilenetv2("mobilenetv2_100", 1.0, num_classes=num_classes, in_chans=in_chans)


@register_model("mobilenetv2_050", family="mobilenetv2")
def mobilenetv2_050(*, num_classes: int = 1000, in_chans: int = 3) -> Network:
    """MobileNetV2 0.5: stem 3x3 stride 2, stages 8-160, head 1280."""
    return mobilenetv2("mobilenetv2_050", 0.5, num_classes=num_classes, in_chans=in_chans)


@register_model("mobilenetv2_s28", input_shape=(1, 1, 28, 28), family="mobilenetv2")
def mobilenetv2_s28(*, num_classes: int = 10, in_chans: int = 1) -> Network:
    """MobileNetV2 0.5 for 28x28: stem 3x3 stride 1, the paper's stages (maps 28/14/7/4/2)."""
    return mobilenetv2("mobilenetv2_s28", 0.5, num_classes=num_classes, in_chans=in_chans, input_size=28,
                       stem_stride=1)


@register_model("mobilenetv2_s32", input_shape=(1, 3, 32, 32), family="mobilenetv2")
def mobilenetv2_s32(*, num_classes: int = 10, in_chans: int = 3) -> Network:
    """MobileNetV2 0.5 for 32x32: stem 3x3 stride 1, the paper's stages (maps 32/16/8/4/2)."""
    return mobilenetv2("mobilenetv2_s32", 0.5, num_classes=num_classes, in_chans=in_chans, input_size=32,
                       stem_stride=1)
