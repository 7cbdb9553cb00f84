"""Reusable layers: quadratic neurons, channels-first LayerNorm, DropPath, LayerScale, spatial mixers, channel
shuffle."""

from chipfit.layers.drop import DropPath, LayerScale
from chipfit.layers.mixers import MIXERS, DWConvMixer, GnConv, QuadraMixer, WindowAttention, build_mixer
from chipfit.layers.norm import LayerNorm2d
from chipfit.layers.quadratic import QUADRATIC_INIT_SCALE, QuadraConv2d, QuadraLinear, quadra_conv2d, quadra_linear
from chipfit.layers.shuffle import channel_shuffle


def is_depthwise(layer) -> bool:
    """A conv, plain or quadratic, with one k x k filter per input channel and one output channel per filter."""
    g = getattr(layer, "groups", 1)
    return g > 1 and getattr(layer, "in_channels", 0) == getattr(layer, "out_channels", 0) == g


__all__ = [
    "MIXERS",
    "QUADRATIC_INIT_SCALE",
    "DWConvMixer",
    "DropPath",
    "GnConv",
    "LayerNorm2d",
    "LayerScale",
    "QuadraConv2d",
    "QuadraLinear",
    "QuadraMixer",
    "WindowAttention",
    "build_mixer",
    "channel_shuffle",
    "is_depthwise",
    "quadra_conv2d",
    "quadra_linear",
]
