"""QuadraNet (Xu et al., ASP-DAC 2024): HorNet's skeleton with a depthwise 7x7 quadratic conv as the spatial mixer.

Stem: 4x4 conv stride 4 + LayerNorm; three downsamplers (LayerNorm + 2x2 conv stride 2); four stages of widths
[C, 2C, 4C, 8C] with C = 16/32/64/96/128 (XXS/XS/T/S/B); depths [3,3,27,3] (QuadraNet36) or [2,3,18,2]
(QuadraNet25); head: global average pool, LayerNorm, linear. Truncated-normal (std 0.02) weights, zero biases,
layer scale 1e-6, drop-path rising linearly over the blocks.

The small variants (``quadranet_s28``, ``quadranet_s32``) use the zoo's shared small skeleton (``_common``): a 2x2
stride-2 stem, C=24, depths [1,1,3,1], 3x3 quadratic kernels, MLP ratio 3, layer scale 1.0.
"""

from __future__ import annotations

from typing import Any

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

QUADRANET_WIDTHS = {"xxs": 16, "xs": 32, "t": 64, "s": 96, "b": 128}
QUADRANET_DEPTHS = {36: (3, 3, 27, 3), 25: (2, 3, 18, 2)}


def quadranet(depth: int, size: str, *, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.0,
              kernel_size: int = 7, mlp_ratio: float = 4.0, quadratic_channel_mixing: bool = False,
              memory_efficient: bool = True, layer_scale: float = 1e-6) -> Network:
    """QuadraNet{depth}-{size} at 224x224.

    Args:
        depth: 36 or 25 (blocks in all).
        size: xxs, xs, t, s or b (C = 16, 32, 64, 96, 128).
        num_classes, in_chans: classifier outputs and input channels.
        drop_path_rate: stochastic depth of the last block.
        kernel_size, mlp_ratio: quadratic kernel and MLP expansion.
        quadratic_channel_mixing: the QuadraFC ablation (a quadratic first MLP layer).
        memory_efficient: recompute quadratic intermediates in backward (False: plain autograd).
        layer_scale: initial layer-scale gamma.
    """
    if depth not in QUADRANET_DEPTHS or size not in QUADRANET_WIDTHS:
        raise ValueError(f"QuadraNet comes in depths {sorted(QUADRANET_DEPTHS)} and sizes {list(QUADRANET_WIDTHS)}, "
                         f"got depth {depth!r}, size {size!r}")
    block = BlockConfig("quadra", kernel_size, mlp_ratio, quadratic_channel_mixing=quadratic_channel_mixing,
                        memory_efficient=memory_efficient, layer_scale=layer_scale)
    return metaformer(f"quadranet{depth}_{size}", QUADRANET_DEPTHS[depth], widths(QUADRANET_WIDTHS[size]),
                      [block] * 4, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


@register_model("quadranet36_xxs", family="quadranet")
def quadranet36_xxs(**opts: Any) -> Network:
    """QuadraNet36-XXS: C=16, depths [3,3,27,3], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(36, "xxs", **opts)


@register_model("quadranet36_xs", family="quadranet")
def quadranet36_xs(**opts: Any) -> Network:
    """QuadraNet36-XS: C=32, depths [3,3,27,3], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(36, "xs", **opts)


@register_model("quadranet36_t", family="quadranet")
def quadranet36_t(**opts: Any) -> Network:
    """QuadraNet36-T: C=64, depths [3,3,27,3], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(36, "t", **opts)


@register_model("quadranet36_s", family="quadranet")
def quadranet36_s(**opts: Any) -> Network:
    """QuadraNet36-S: C=96, depths [3,3,27,3], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(36, "s", **opts)


@register_model("quadranet36_b", family="quadranet")
def quadranet36_b(**opts: Any) -> Network:
    """QuadraNet36-B: C=128, depths [3,3,27,3], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(36, "b", **opts)


@register_model("quadranet25_xxs", family="quadranet")
def quadranet25_xxs(**opts: Any) -> Network:
    """QuadraNet25-XXS: C=16, depths [2,3,18,2], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(25, "xxs", **opts)


@register_model("quadranet25_xs", family="quadranet")
def quadranet25_xs(**opts: Any) -> Network:
    """QuadraNet25-XS: C=32, depths [2,3,18,2], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(25, "xs", **opts)


@register_model("quadranet25_t", family="quadranet")
def quadranet25_t(**opts: Any) -> Network:
    """QuadraNet25-T: C=64, depths [2,3,18,2], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(25, "t", **opts)


@register_model("quadranet25_s", family="quadranet")
def quadranet25_s(**opts: Any) -> Network:
    """QuadraNet25-S: C=96, depths [2,3,18,2], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(25, "s", **opts)


@register_model("quadranet25_b", family="quadranet")
def quadranet25_b(**opts: Any) -> Network:
    """QuadraNet25-B: C=128, depths [2,3,18,2], 7x7 quadratic mixer (options: see ``quadranet``)."""
    return quadranet(25, "b", **opts)


def quadranet_small(size: int, *, num_classes: int = 10, in_chans: int, drop_path_rate: float = 0.0,
                    kernel_size: int = SMALL_KERNEL, mlp_ratio: float = SMALL_MLP_RATIO,
                    quadratic_channel_mixing: bool = False, memory_efficient: bool = True,
                    layer_scale: float = SMALL_LAYER_SCALE) -> Network:
    """QuadraNet for ``size`` x ``size`` images on the zoo's small skeleton (options as ``quadranet``)."""
    block = BlockConfig("quadra", kernel_size, mlp_ratio, quadratic_channel_mixing=quadratic_channel_mixing,
                        memory_efficient=memory_efficient, layer_scale=layer_scale)
    return small_metaformer(f"quadranet_s{size}", size, [block] * 4, num_classes=num_classes, in_chans=in_chans,
                            drop_path_rate=drop_path_rate)


@register_model("quadranet_s28", input_shape=(1, 1, 28, 28), family="quadranet")
def quadranet_s28(*, num_classes: int = 10, in_chans: int = 1, **opts: Any) -> Network:
    """QuadraNet for 28x28: stem 2x2 stride 2, C=24, depths [1,1,3,1], 3x3 quadratic mixer."""
    return quadranet_small(28, num_classes=num_classes, in_chans=in_chans, **opts)


@register_model("quadranet_s32", input_shape=(1, 3, 32, 32), family="quadranet")
def quadranet_s32(*, num_classes: int = 10, in_chans: int = 3, **opts: Any) -> Network:
    """QuadraNet for 32x32: stem 2x2 stride 2, C=24, depths [1,1,3,1], 3x3 quadratic mixer."""
    return quadranet_small(32, num_classes=num_classes, in_chans=in_chans, **opts)
