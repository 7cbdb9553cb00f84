"""ConvNeXt (Liu et al., CVPR 2022) on the metaformer skeleton: depthwise 7x7, LayerNorm, MLP in one residual.

ConvNeXt-T: C=96, depths [3,3,9,3], layer scale 1e-6; published 28.6M params / 4.5G MACs at 224x224.

The small variants (``convnext_s28``, ``convnext_s32``) use the zoo's shared small skeleton (``_common``): a 2x2
stride-2 stem, C=24, depths [1,1,3,1], 3x3 depthwise kernels, MLP ratio 3, layer scale 1.0.
"""

from __future__ import annotations

from chipfit.models._common import (
    SMALL_KERNEL,
    SMALL_LAYER_SCALE,
    SMALL_MLP_RATIO,
    metaformer,
    small_metaformer,
    widths,
)
from chipfit.models._registry import register_model
from chipfit.models.build import Network
from chipfit.models.config import BlockConfig


@register_model("convnext_t", family="convnext")
def convnext_t(*, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """ConvNeXt-T: C=96, depths [3,3,9,3], 7x7 depthwise."""
    return metaformer("convnext_t", (3, 3, 9, 3), widths(96), [BlockConfig("convnext", 7)] * 4,
                      num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


def convnext_small(size: int, *, num_classes: int, in_chans: int, drop_path_rate: float = 0.0) -> Network:
    """ConvNeXt for ``size`` x ``size`` images on the zoo's small skeleton."""
    block = BlockConfig("convnext", SMALL_KERNEL, SMALL_MLP_RATIO, layer_scale=SMALL_LAYER_SCALE)
    return small_metaformer(f"convnext_s{size}", size, [block] * 4, num_classes=num_classes, in_chans=in_chans,
                            drop_path_rate=drop_path_rate)


@register_model("convnext_s28", input_shape=(1, 1, 28, 28), family="convnext")
def convnext_s28(*, num_classes: int = 10, in_chans: int = 1, drop_path_rate: float = 0.0) -> Network:
    """ConvNeXt for 28x28: stem 2x2 stride 2, C=24, depths [1,1,3,1], 3x3 depthwise."""
    return convnext_small(28, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


@register_model("convnext_s32", input_shape=(1, 3, 32, 32), family="convnext")
def convnext_s32(*, num_classes: int = 10, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """ConvNeXt for 32x32: stem 2x2 stride 2, C=24, depths [1,1,3,1], 3x3 depthwise."""
    return convnext_small(32, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)
