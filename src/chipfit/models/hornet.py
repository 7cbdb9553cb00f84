"""HorNet (Rao et al., NeurIPS 2022): the metaformer skeleton with gnConv, recursive gated convolution, as mixer.

HorNet-T/S/B (7x7 kernels): C = 64/96/128, depths [2,3,18,2], gnConv orders [2,3,4,5] per stage, layer scale 1e-6.
Published: T 22M params / 4.0G MACs, S 50M / 8.8G, B 87M / 15.6G at 224x224.

The small variants (``hornet_s28``, ``hornet_s32``) use the zoo's shared small skeleton (``_common``): a 2x2 stride-2
stem, C=24, depths [1,1,3,1], 3x3 kernels, orders [2,3,4,5], MLP ratio 3, layer scale 1.0.
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

HORNET_DEPTHS = (2, 3, 18, 2)
HORNET_ORDERS = (2, 3, 4, 5)


def hornet(name: str, width: int, *, num_classes: int = 1000, in_chans: int = 3,
           drop_path_rate: float = 0.0) -> Network:
    """A HorNet of base width ``width`` at 224x224 (7x7 gnConv)."""
    blocks = [BlockConfig("hor", 7, order=o) for o in HORNET_ORDERS]
    return metaformer(name, HORNET_DEPTHS, widths(width), blocks, num_classes=num_classes, in_chans=in_chans,
                      drop_path_rate=drop_path_rate)


@register_model("hornet_t", family="hornet")
def hornet_t(*, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """HorNet-T (7x7): C=64, depths [2,3,18,2], gnConv orders [2,3,4,5]."""
    return hornet("hornet_t", 64, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


@register_model("hornet_s", family="hornet")
def hornet_s(*, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """HorNet-S (7x7): C=96, depths [2,3,18,2], gnConv orders [2,3,4,5]."""
    return hornet("hornet_s", 96, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


@register_model("hornet_b", family="hornet")
def hornet_b(*, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """HorNet-B (7x7): C=128, depths [2,3,18,2], gnConv orders [2,3,4,5]."""
    return hornet("hornet_b", 128, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


def hornet_small(size: int, *, num_classes: int, in_chans: int, drop_path_rate: float = 0.0) -> Network:
    """HorNet for ``size`` x ``size`` images on the zoo's small skeleton."""
    blocks = [BlockConfig("hor", SMALL_KERNEL, SMALL_MLP_RATIO, order=o, layer_scale=SMALL_LAYER_SCALE)
              for o in HORNET_ORDERS]
    return small_metaformer(f"hornet_s{size}", size, blocks, num_classes=num_classes, in_chans=in_chans,
                            drop_path_rate=drop_path_rate)


@register_model("hornet_s28", input_shape=(1, 1, 28, 28), family="hornet")
def hornet_s28(*, num_classes: int = 10, in_chans: int = 1, drop_path_rate: float = 0.0) -> Network:
    """HorNet for 28x28: stem 2x2 stride 2, C=24, depths [1,1,3,1], 3x3 gnConv, orders [2,3,4,5]."""
    return hornet_small(28, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


@register_model("hornet_s32", input_shape=(1, 3, 32, 32), family="hornet")
def hornet_s32(*, num_classes: int = 10, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """HorNet for 32x32: stem 2x2 stride 2, C=24, depths [1,1,3,1], 3x3 gnConv, orders [2,3,4,5]."""
    return hornet_small(32, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)
