"""Reusable layers: quadratic neurons, channels-first LayerNorm, DropPath, LayerScale and spatial mixers."""

from chipfit.layers.drop import DropPath, LayerScale
from chipfit.layers.mixers import MIXERS, DWConvMixer, GnConv, QuadraMixer, WindowAttention, build_mixer
from chipfit.layers.norm import LayerNorm2d
from chipfit.layers.quadratic import QUADRATIC_INIT_SCALE, QuadraConv2d, QuadraLinear, quadra_conv2d, quadra_linear

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
    "quadra_conv2d",
    "quadra_linear",
]
