"""The one builder: ``build_model(ModelConfig) -> nn.Module``."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from chipfit.layers import LayerNorm2d
from chipfit.models.blocks import ConvNeXtBlock, InvertedResidual, MetaBlock, ShuffleUnit, conv_bn_act
from chipfit.models.config import ModelConfig


class Network(nn.Module):
    """A built network: stem, stages, head. Keeps its config in ``.config``."""

    def __init__(self, config: ModelConfig, stem: nn.Module, stages: nn.Sequential, head: nn.Module):
        super().__init__()
        self.config = config
        self.stem, self.stages, self.head = stem, stages, head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class PoolHead(nn.Module):
    """Global average pool, optional LayerNorm, linear classifier."""

    def __init__(self, dim: int, num_classes: int, norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6) if norm else nn.Identity()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))


def build_model(cfg: ModelConfig) -> Network:
    """Build the network a config describes (ValueError naming the value for impossible configurations)."""
    builder = {"metaformer": _metaformer, "mobilenetv2": _mobilenetv2, "shufflenetv2": _shufflenetv2}[cfg.family]
    return builder(cfg)


def _metaformer(cfg: ModelConfig) -> Network:
    c0 = cfg.stem_channels or cfg.stages[0].channels
    pad = (cfg.stem_kernel - cfg.stem_stride + 1) // 2 if cfg.stem_kernel > cfg.stem_stride else 0
    stem = nn.Sequential(nn.Conv2d(cfg.in_chans, c0, cfg.stem_kernel, cfg.stem_stride, padding=pad), LayerNorm2d(c0))
    total = sum(s.depth for s in cfg.stages)
    rates = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    size = math.ceil(cfg.input_size / cfg.stem_stride)
    stages, cin, k = [], c0, 0
    for si, s in enumerate(cfg.stages):
        layers: list[nn.Module] = []
        if si > 0 and s.stride == 2:
            if size < 2:
                raise ValueError(f"stage {si}: the map is {size}x{size} at input {cfg.input_size}, too small for "
                                 "another "
                                 "stride-2 downsampler; use fewer stages or a smaller stem stride")
            layers.append(nn.Sequential(LayerNorm2d(cin), nn.Conv2d(cin, s.channels, 2, 2)))
            size = size // 2
        elif cin != s.channels:
            layers.append(nn.Sequential(LayerNorm2d(cin), nn.Conv2d(cin, s.channels, 1)))
        if s.block.kind == "swin" and s.block.window_size > size:
            raise ValueError(f"stage {si}: window larger than the map (window {s.block.window_size}, map {size}x{size} "
                             f"at input {cfg.input_size}); use window_size <= {size}")
        for j in range(s.depth):
            if s.block.kind == "convnext":
                layers.append(ConvNeXtBlock(s.channels, s.block, rates[k]))
            elif s.block.kind in ("quadra", "hor", "swin", "conv", "skip"):
                if s.block.kind == "hor" and s.channels % (2 ** (s.block.order - 1)):
                    raise ValueError(f"stage {si}: gnConv order {s.block.order} too high for width {s.channels} "
                                     f"(needs a multiple of {2 ** (s.block.order - 1)})")
                shift = j % 2 == 1 and s.block.window_size < size  # a window covering the map has nothing to shift
                layers.append(MetaBlock(s.channels, s.block, rates[k], shift=shift, input_resolution=size))
            else:
                raise ValueError(f"stage {si}: block kind {s.block.kind!r} does not fit the metaformer family")
            k += 1
        stages.append(nn.Sequential(*layers))
        cin = s.channels
    net = Network(cfg, stem, nn.Sequential(*stages), PoolHead(cin, cfg.num_classes, norm=True))
    net.apply(_trunc_normal_init)
    return net


def _trunc_normal_init(m: nn.Module) -> None:
    """Truncated normal (std 0.02) weights and zero biases for convs and linears, quadratic ones included."""
    from chipfit.layers import QuadraConv2d, QuadraLinear

    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (QuadraConv2d, QuadraLinear)):
        for w in (m.weight_a, m.weight_b, m.weight_c):
            nn.init.trunc_normal_(w, std=0.02)
        if m.bias_a is not None:
            for b in (m.bias_a, m.bias_b, m.bias_c):
                nn.init.zeros_(b)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _mobilenetv2(cfg: ModelConfig) -> Network:
    c0 = cfg.stem_channels or 32
    stem = conv_bn_act(cfg.in_chans, c0, 3, cfg.stem_stride)
    stages, cin = [], c0
    for s in cfg.stages:
        blocks = [InvertedResidual(cin if i == 0 else s.channels, s.channels, s.stride if i == 0 else 1,
                                   s.block.expand_ratio, s.block.kernel_size) for i in range(s.depth)]
        stages.append(nn.Sequential(*blocks))
        cin = s.channels if s.depth else cin
    head_c = cfg.head_channels or 1280
    stages.append(conv_bn_act(cin, head_c))
    net = Network(cfg, stem, nn.Sequential(*stages), PoolHead(head_c, cfg.num_classes, norm=False))
    _kaiming_init(net)
    return net


def _shufflenetv2(cfg: ModelConfig) -> Network:
    c0 = cfg.stem_channels or 24
    pool = [nn.MaxPool2d(3, 2, 1)] if cfg.stem_stride >= 2 and cfg.input_size >= 64 else []
    stem = nn.Sequential(conv_bn_act(cfg.in_chans, c0, 3, min(cfg.stem_stride, 2), act=nn.ReLU), *pool)
    stages, cin = [], c0
    for s in cfg.stages:
        blocks = [ShuffleUnit(cin if i == 0 else s.channels, s.channels, s.stride if i == 0 else 1,
                              s.block.kernel_size) for i in range(s.depth)]
        stages.append(nn.Sequential(*blocks))
        cin = s.channels if s.depth else cin
    head_c = cfg.head_channels or 1024
    stages.append(conv_bn_act(cin, head_c, act=nn.ReLU))
    net = Network(cfg, stem, nn.Sequential(*stages), PoolHead(head_c, cfg.num_classes, norm=False))
    _kaiming_init(net)
    return net


def _kaiming_init(net: nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
