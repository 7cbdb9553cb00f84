"""Reusable layers: quadratic neurons, channels-first LayerNorm, DropPath, LayerScale, spatial mixers."""

from chipfit.layers.mixers import MIXERS, DWConvMixer, GnConv, QuadraMixer, WindowAttention, build_mixer
from chipfit.layers.norm import DropPath, LayerNorm2d, LayerScale
from chipfit.layers.quadratic import QuadraConv2d, QuadraLinear, quadra_conv2d

__all__ = ["MIXERS", "DWConvMixer", "DropPath", "GnConv", "LayerNorm2d", "LayerScale", "QuadraConv2d",
           "QuadraLinear", "QuadraMixer", "WindowAttention", "build_mixer", "quadra_conv2d"]
