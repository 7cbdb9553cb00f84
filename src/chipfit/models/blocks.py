"""Blocks on channels-first (N, C, H, W) maps.

Metaformer blocks share one shape, :class:`MetaBlock`, and differ only in the spatial mixer (``BlockConfig.kind``):
    x = x + drop_path(gamma1 * mixer(LayerNorm(x)))
    x = x + drop_path(gamma2 * pw2(GELU(pw1(LayerNorm(x)))))
with the 1x1 convs pw1 (C -> rC) and pw2 (rC -> C), and the mixer
    quadra  QuadraBlock: depthwise k x k quadratic conv, a(x) * b(x) + c(x)
    hor     HorBlock: gnConv of the stage's order
    swin    SwinBlock: window attention, shifted by window // 2 in every second block of a stage
    conv    ConvBlock: a plain depthwise k x k conv
    skip    SkipBlock: an identity mixer (no spatial mixing; the mixing half's norm and layer scale stay, so the block
            differs from the others in spatial mixing only, as in the QuadraNet paper's memory table)
ConvNeXt puts its norm after the depthwise conv in a single residual (:class:`ConvNeXtBlock`):
    x = x + drop_path(gamma * pw2(GELU(pw1(LayerNorm(dwconv(x))))))
``quadratic_channel_mixing`` makes pw1 a quadratic 1x1 conv (the paper's QuadraFC ablation).

MobileNetV2's :class:`InvertedResidual` and ShuffleNetV2's :class:`ShuffleUnit` use BatchNorm and ReLU6 / ReLU.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.layers import DropPath, LayerNorm2d, LayerScale, QuadraConv2d, build_mixer, channel_shuffle
from chipfit.models.config import BlockConfig

_MIXER = {"quadra": "quadra", "hor": "gnconv", "swin": "window_attention", "conv": "dwconv", "skip": "none"}


def _scale(dim: int, init: float) -> nn.Module:
    return LayerScale(dim, init) if init > 0 else nn.Identity()


def _mlp(dim: int, cfg: BlockConfig) -> tuple[nn.Module, nn.Module]:
    """The channel MLP's two 1x1 convs, C -> rC -> C; the first is quadratic in the QuadraFC ablation."""
    hidden = max(int(round(dim * cfg.mlp_ratio)), 1)
    pw1 = (QuadraConv2d(dim, hidden, 1, memory_efficient=cfg.memory_efficient) if cfg.quadratic_channel_mixing
           else nn.Conv2d(dim, hidden, 1))
    return pw1, nn.Conv2d(hidden, dim, 1)


class MetaBlock(nn.Module):
    """QuadraBlock, HorBlock, SwinBlock, ConvBlock or SkipBlock, by ``cfg.kind`` (see the module docstring).

    Args:
        dim: channels in and out.
        cfg: the block's configuration.
        drop_path: stochastic-depth probability of both residual branches.
        shift: shift the attention windows by window // 2 (swin).
        input_resolution: side of the map, checked against the window (swin).
    """

    def __init__(self, dim: int, cfg: BlockConfig, drop_path: float = 0.0, shift: bool = False,
                 input_resolution: int | None = None):
        super().__init__()
        if cfg.kind not in _MIXER:
            raise ValueError(f"MetaBlock takes the kinds {', '.join(_MIXER)}, got {cfg.kind!r}")
        opts = {"kernel_size": cfg.kernel_size, "memory_efficient": cfg.memory_efficient, "order": cfg.order,
                "num_heads": cfg.heads(dim), "window_size": cfg.window_size,
                "shift_size": cfg.window_size // 2 if shift else 0, "input_resolution": input_resolution}
        self.kind = cfg.kind
        self.norm1 = LayerNorm2d(dim)
        self.mixer = build_mixer(_MIXER[cfg.kind], dim, **opts)
        self.gamma1 = _scale(dim, cfg.layer_scale)
        self.norm2 = LayerNorm2d(dim)
        self.pw1, self.pw2 = _mlp(dim, cfg)
        self.gamma2 = _scale(dim, cfg.layer_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1(self.mixer(self.norm1(x))))
        return x + self.drop_path(self.gamma2(self.pw2(F.gelu(self.pw1(self.norm2(x))))))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise k x k, LayerNorm, MLP, layer scale, one residual."""

    def __init__(self, dim: int, cfg: BlockConfig, drop_path: float = 0.0):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, cfg.kernel_size, padding=cfg.kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pw1, self.pw2 = _mlp(dim, cfg)
        self.gamma = _scale(dim, cfg.layer_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.gamma(self.pw2(F.gelu(self.pw1(self.norm(self.dwconv(x)))))))


def conv_bn_act(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    """k x k conv (no bias, padding k // 2), BatchNorm, then ``act`` unless None."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (BN, ReLU6), k x k depthwise with stride (BN, ReLU6), 1x1 project (BN);
    residual when stride 1 and the widths match. Expansion 1 has no expand conv (as in the paper's first stage)."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int, kernel_size: int = 3):
        super().__init__()
        hidden = cin * expand_ratio
        layers = [] if expand_ratio == 1 else [conv_bn_act(cin, hidden)]
        layers += [conv_bn_act(hidden, hidden, kernel_size, stride, groups=hidden), conv_bn_act(hidden, cout, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit. Stride 1: split the channels, transform one half (1x1, dw k x k, 1x1), concat, shuffle.
    Stride 2: both branches see the whole input (left: dw k x k s2, 1x1; right: 1x1, dw s2, 1x1)."""

    def __init__(self, cin: int, cout: int, stride: int, kernel_size: int = 3):
        super().__init__()
        if cout % 2:
            raise ValueError(f"ShuffleNetV2 unit: output channels must be even, got {cout}")
        half = cout // 2
        if stride == 1 and cin != cout:
            raise ValueError(f"ShuffleNetV2 unit: stride 1 needs in == out channels, got {cin} -> {cout}")
        self.stride = stride
        bin_ = cin if stride == 2 else half
        self.right = nn.Sequential(conv_bn_act(bin_, half, act=nn.ReLU),
                                   conv_bn_act(half, half, kernel_size, stride, groups=half, act=None),
                                   conv_bn_act(half, half, act=nn.ReLU))
        self.left = (nn.Sequential(conv_bn_act(cin, cin, kernel_size, stride, groups=cin, act=None),
                                   conv_bn_act(cin, half, act=nn.ReLU)) if stride == 2 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.left is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.right(b)), dim=1)
        else:
            out = torch.cat((self.left(x), self.right(x)), dim=1)
        return channel_shuffle(out, 2)
