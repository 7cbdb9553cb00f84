"""ShuffleNetV2 (Ma et al., ECCV 2018): channel split, a 1x1 / depthwise 3x3 / 1x1 branch, concat, channel shuffle.

Stem 3x3 conv stride 2 (24 channels) + 3x3 stride-2 max-pool; three stages of 4/8/4 units whose first unit has
stride 2; a 1x1 conv to 1024 channels, pool, linear. x0.5: widths 48/96/192, 1.4M params / 41M MACs at 224x224;
x1.0: 116/232/464, 2.3M / 146M.

The small variants (``shufflenetv2_s28``, ``shufflenetv2_s32``) are x0.5 widths with a stride-1 stem and no max-pool,
units 2/4/2 and a 512-channel head, so the three stride-2 stages take 28x28 to 4x4 (32x32 to 4x4).
"""

from __future__ import annotations

from collections.abc import Sequence

from chipfit.models._registry import register_model
from chipfit.models.build import Network, build_model
from chipfit.models.config import BlockConfig, ModelConfig, StageConfig

SHUFFLENETV2_WIDTHS = {"x0_5": (48, 96, 192), "x1_0": (116, 232, 464)}


def shufflenetv2(name: str, channels: Sequence[int], *, num_classes: int = 1000, in_chans: int = 3,
                 input_size: int = 224, stem_stride: int = 2, stem_pool: bool = True,
                 depths: Sequence[int] = (4, 8, 4), head_channels: int = 1024) -> Network:
    """ShuffleNetV2 with stage widths ``channels``, every stage starting with a stride-2 unit."""
    stages = tuple(StageConfig(d, c, BlockConfig("shufflev2", 3), stride=2)
                   for d, c in zip(depths, channels, strict=True))
    cfg = ModelConfig("shufflenetv2", stages, num_classes, in_chans, stem_kernel=3, stem_stride=stem_stride,
                      stem_channels=24, stem_pool=stem_pool, head_channels=head_channels, input_size=input_size,
                      name=name)
    return build_model(cfg)


@register_model("shufflenetv2_x0_5", family="shufflenetv2")
def shufflenetv2_x0_5(*, num_classes: int = 1000, in_chans: int = 3) -> Network:
    """ShuffleNetV2 x0.5: stem 3x3 stride 2 + max-pool, widths 48/96/192, head 1024."""
    return shufflenetv2("shufflenetv2_x0_5", SHUFFLENETV2_WIDTHS["x0_5"], num_classes=num_classes, in_chans=in_chans)


@register_model("shufflenetv2_x1_0", family="shufflenetv2")
def shufflenetv2_x1_0(*, num_classes: int = 1000, in_chans: int = 3) -> Network:
    """ShuffleNetV2 x1.0: stem 3x3 stride 2 + max-pool, widths 116/232/464, head 1024."""
    return shufflenetv2("shufflenetv2_x1_0", SHUFFLENETV2_WIDTHS["x1_0"], num_classes=num_classes, in_chans=in_chans)


def shufflenetv2_small(size: int, *, num_classes: int, in_chans: int) -> Network:
    """ShuffleNetV2 x0.5 widths for ``size`` x ``size`` images: stride-1 stem, no max-pool, units 2/4/2."""
    return shufflenetv2(f"shufflenetv2_s{size}", SHUFFLENETV2_WIDTHS["x0_5"], num_classes=num_classes,
                        in_chans=in_chans, input_size=size, stem_stride=1, stem_pool=False, depths=(2, 4, 2),
                        head_channels=512)


@register_model("shufflenetv2_s28", input_shape=(1, 1, 28, 28), family="shufflenetv2")
def shufflenetv2_s28(*, num_classes: int = 10, in_chans: int = 1) -> Network:
    """ShuffleNetV2 x0.5 for 28x28: stem 3x3 stride 1, no max-pool, units 2/4/2, head 512 (maps 28/14/7/4)."""
    return shufflenetv2_small(28, num_classes=num_classes, in_chans=in_chans)


@register_model("shufflenetv2_s32", input_shape=(1, 3, 32, 32), family="shufflenetv2")
def shufflenetv2_s32(*, num_classes: int = 10, in_chans: int = 3) -> Network:
    """ShuffleNetV2 x0.5 for 32x32: stem 3x3 stride 1, no max-pool, units 2/4/2, head 512 (maps 32/16/8/4)."""
    return shufflenetv2_small(32, num_classes=num_classes, in_chans=in_chans)
