"""The one builder: ``build_model(ModelConfig) -> nn.Module``."""

from __future__ import annotations

import torch
import torch.nn as nn

from chipfit.layers import LayerNorm2d, QuadraConv2d, QuadraLinear
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
    """Build the network a config describes; the config checked itself when it was made (see ``ModelConfig``)."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"build_model takes a ModelConfig, got {type(cfg).__name__}; for a dict use "
                        "ModelConfig.from_dict(d)")
    builder = {"metaformer": _metaformer, "mobilenetv2": _mobilenetv2, "shufflenetv2": _shufflenetv2}[cfg.family]
    return builder(cfg)


def _stem(cfg: ModelConfig, norm_act: list[nn.Module], bias: bool) -> nn.Sequential:
    k, s, c0 = cfg.stem_kernel, cfg.stem_stride, cfg.stem_width()
    pad = ((k - s + 1) // 2 if k > s else 0) if cfg.family == "metaformer" else k // 2
    pool = [nn.MaxPool2d(3, 2, 1)] if cfg.stem_pool else []
    return nn.Sequential(nn.Conv2d(cfg.in_chans, c0, k, s, pad, bias=bias), *norm_act, *pool)


def _metaformer(cfg: ModelConfig) -> Network:
    stem = _stem(cfg, [LayerNorm2d(cfg.stem_width())], bias=True)
    total = sum(s.depth for s in cfg.stages)
    rates = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    stages, cin, k = [], cfg.stem_width(), 0
    for s, size in zip(cfg.stages, cfg.stage_sizes(), strict=True):
        layers: list[nn.Module] = []
        if s.stride == 2:
            layers.append(nn.Sequential(LayerNorm2d(cin), nn.Conv2d(cin, s.channels, 2, 2)))
        elif cin != s.channels:
            layers.append(nn.Sequential(LayerNorm2d(cin), nn.Conv2d(cin, s.channels, 1)))
        for j in range(s.depth):
            if s.block.kind == "convnext":
                layers.append(ConvNeXtBlock(s.channels, s.block, rates[k]))
            else:
                shift = j % 2 == 1 and s.block.window_size < size  # a window covering the map has nothing to shift
                layers.append(MetaBlock(s.channels, s.block, rates[k], shift=shift, input_resolution=size))
            k += 1
        stages.append(nn.Sequential(*layers))
        cin = s.channels
    net = Network(cfg, stem, nn.Sequential(*stages), PoolHead(cin, cfg.num_classes, norm=True))
    net.apply(_trunc_normal_init)
    return net


def _trunc_normal_init(m: nn.Module) -> None:
    """Truncated normal (std 0.02) weights and zero biases for convs and linears, quadratic ones included."""
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


def _mobilenetv2(cfg: ModelConfig) -> Network:
    c0 = cfg.stem_width()
    stem = _stem(cfg, [nn.BatchNorm2d(c0), nn.ReLU6(inplace=True)], bias=False)
    stages, cin = [], c0
    for s in cfg.stages:
        blocks = [InvertedResidual(cin if i == 0 else s.channels, s.channels, s.stride if i == 0 else 1,
                                   s.block.expand_ratio, s.block.kernel_size) for i in range(s.depth)]
        stages.append(nn.Sequential(*blocks))
        cin = s.channels if s.depth else cin
    stages.append(conv_bn_act(cin, cfg.head_width()))
    net = Network(cfg, stem, nn.Sequential(*stages), PoolHead(cfg.head_width(), cfg.num_classes, norm=False))
    _kaiming_init(net)
    return net


def _shufflenetv2(cfg: ModelConfig) -> Network:
    c0 = cfg.stem_width()
    stem = _stem(cfg, [nn.BatchNorm2d(c0), nn.ReLU(inplace=True)], bias=False)
    stages, cin = [], c0
    for s in cfg.stages:
        blocks = [ShuffleUnit(cin if i == 0 else s.channels, s.channels, s.stride if i == 0 else 1,
                              s.block.kernel_size) for i in range(s.depth)]
        stages.append(nn.Sequential(*blocks))
        cin = s.channels if s.depth else cin
    stages.append(conv_bn_act(cin, cfg.head_width(), act=nn.ReLU))
    net = Network(cfg, stem, nn.Sequential(*stages), PoolHead(cfg.head_width(), cfg.num_classes, norm=False))
    _kaiming_init(net)
    return net


def _kaiming_init(net: nn.Module) -> None:
    """torchvision's MobileNetV2 / ShuffleNetV2 initialisation."""
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
