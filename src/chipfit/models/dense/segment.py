"""Semantic segmentation: BiSeNet (Yu et al., ECCV 2018) on any zoo backbone, and Fast-SCNN (Poudel et al., BMVC 2019).

Both return logits of shape (B, num_classes + 1, H, W) at the input's resolution; channel 0 is the background.

BiSeNet. A spatial (detail) path of three 3x3 stride-2 conv-BN-ReLU keeps a stride-8 map of fine detail. The context
path takes the backbone's stride-16 and stride-32 maps: each passes an attention refinement module (3x3 conv-BN-ReLU
to the context width, then a channel gate: global average pool, 1x1 conv, sigmoid); a global-context term (the
stride-32 map pooled, 1x1 conv, ReLU) is added to the refined stride-32 map, which is upsampled, smoothed (3x3
conv-BN-ReLU), added to the refined stride-16 map, upsampled to the spatial path's size and smoothed again. The
feature fusion module concatenates the two paths, mixes them (1x1 conv-BN-ReLU) and reweights channels (pool, 1x1,
ReLU, 1x1, sigmoid; x + x * gate). A head (3x3 conv-BN-ReLU, 1x1 conv) gives the logits at stride 8, upsampled
bilinearly to the input. Departures from the paper, for small inputs and export: the first spatial conv is 3x3
(paper 7x7), and the pooled (1x1) branches use biased convs without BatchNorm (a BatchNorm over one value per channel
fails in training at batch 1). The auxiliary training heads are not built.

Fast-SCNN. Learning to downsample: a 3x3 stride-2 conv-BN-ReLU and two depthwise-separable stride-2 convs (stride
8). Global feature extractor: MobileNetV2 inverted residuals (:class:`~chipfit.models.blocks.InvertedResidual`,
expansion 6) to stride 32, then a pyramid pooling module (average pools to ``b x b`` bins, 1x1 conv, ReLU, bilinear
upsampling, concatenated with its input, 1x1 conv-BN-ReLU). Feature fusion: the low-resolution map upsampled to
stride 8, a depthwise 3x3 conv-BN-ReLU and a 1x1 conv-BN, added to a 1x1 conv-BN of the stride-8 branch, ReLU.
Classifier: two depthwise-separable convs, dropout, a 1x1 conv; bilinear upsampling to the input. The pooling bins
must divide the stride-32 map (checked at ``input_hw``): each bin is a plain average pool, which every exporter and
compiler takes (the paper's bins 1/2/3/6 do not divide Cityscapes' 32x64 map; the default is 1/2/4/8).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.models.blocks import InvertedResidual, conv_bn_act
from chipfit.models.config import ModelConfig
from chipfit.models.dense._common import (
    SeparableConv,
    check_common,
    config_from_dict,
    conv_bn_relu,
    fit_backbone,
    init_convs,
    resize,
    tuples,
)
from chipfit.models.dense.backbone import Backbone, feature_taps

BISENET_STRIDES = (16, 32)


@dataclass(frozen=True)
class BiSeNetConfig:
    """BiSeNet (see the module docstring).

    Attributes:
        backbone: the context path's network, any zoo family with maps at strides 16 and 32; its ``in_chans`` and
            ``input_size`` are set from this config (and ``num_classes`` to 1: its classifier is not built).
        num_classes: foreground classes; the logits have ``num_classes + 1`` channels, channel 0 the background.
        in_chans: input channels.
        input_hw: the (height, width) the network is meant for (an int means a square).
        spatial_channels: widths of the spatial path's three stride-2 convs.
        context_channels: width of the attention refinement modules and the context path's output.
        fusion_channels: width of the feature fusion module.
        head_channels: width of the head's 3x3 conv.
        name: a label (the registry name when built from the registry).
    """

    backbone: ModelConfig
    num_classes: int = 19
    in_chans: int = 3
    input_hw: tuple[int, int] = (1024, 2048)
    spatial_channels: tuple[int, int, int] = (64, 64, 128)
    context_channels: int = 128
    fusion_channels: int = 256
    head_channels: int = 256
    name: str = ""

    def __post_init__(self):
        check_common(self)
        tuples(self, "spatial_channels")
        if len(self.spatial_channels) != 3 or min(self.spatial_channels) < 1:
            raise ValueError(f"spatial_channels: three positive widths (one per stride-2 conv), got "
                             f"{self.spatial_channels}")
        if min(self.context_channels, self.fusion_channels, self.head_channels) < 1:
            raise ValueError(f"context_channels, fusion_channels and head_channels must be >= 1, got "
                             f"{self.context_channels}, {self.fusion_channels}, {self.head_channels}")
        if self.fusion_channels < 4:
            raise ValueError(f"fusion_channels must be >= 4 (its channel attention reduces it 4 times), got "
                             f"{self.fusion_channels}")
        object.__setattr__(self, "backbone", fit_backbone(self.backbone, self.in_chans, self.input_hw))
        feature_taps(self.backbone, BISENET_STRIDES)

    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_chans, *self.input_hw)

    def replace(self, **changes: Any) -> BiSeNetConfig:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": "bisenet", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BiSeNetConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        return config_from_dict(cls, "bisenet", d)


@dataclass(frozen=True)
class FastSCNNConfig:
    """Fast-SCNN (see the module docstring); the defaults are the paper's network for Cityscapes.

    Attributes:
        num_classes: foreground classes; the logits have ``num_classes + 1`` channels, channel 0 the background.
        in_chans: input channels.
        input_hw: the (height, width) the network is meant for (an int means a square).
        downsample_channels: widths of learning-to-downsample's conv and two separable convs (all stride 2).
        gfe_channels, gfe_depths, gfe_strides: the global feature extractor's inverted-residual stages.
        expand_ratio: their expansion t.
        pool_bins: the pyramid pooling module's bin counts per side; each must divide the map it pools.
        fusion_channels: width after feature fusion.
        classifier_channels: width of the classifier's two separable convs.
        dropout: dropout before the classifier's 1x1 conv.
        name: a label (the registry name when built from the registry).
    """

    num_classes: int = 19
    in_chans: int = 3
    input_hw: tuple[int, int] = (1024, 2048)
    downsample_channels: tuple[int, int, int] = (32, 48, 64)
    gfe_channels: tuple[int, ...] = (64, 96, 128)
    gfe_depths: tuple[int, ...] = (3, 3, 3)
    gfe_strides: tuple[int, ...] = (2, 2, 1)
    expand_ratio: int = 6
    pool_bins: tuple[int, ...] = (1, 2, 4, 8)
    fusion_channels: int = 128
    classifier_channels: int = 128
    dropout: float = 0.1
    name: str = ""

    def __post_init__(self):
        check_common(self)
        tuples(self, "downsample_channels", "gfe_channels", "gfe_depths", "gfe_strides", "pool_bins")
        if len(self.downsample_channels) != 3 or min(self.downsample_channels) < 1:
            raise ValueError(f"downsample_channels: three positive widths, got {self.downsample_channels}")
        n = len(self.gfe_channels)
        if not n or len(self.gfe_depths) != n or len(self.gfe_strides) != n:
            raise ValueError(f"gfe_channels, gfe_depths and gfe_strides need one entry per stage, got "
                             f"{self.gfe_channels}, {self.gfe_depths}, {self.gfe_strides}")
        if min(self.gfe_channels) < 1 or min(self.gfe_depths) < 1 or set(self.gfe_strides) - {1, 2}:
            raise ValueError(f"gfe stages need widths >= 1, depths >= 1 and strides 1 or 2, got "
                             f"{self.gfe_channels}, {self.gfe_depths}, {self.gfe_strides}")
        if self.expand_ratio < 1 or min(self.fusion_channels, self.classifier_channels) < 1:
            raise ValueError("expand_ratio, fusion_channels and classifier_channels must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.gfe_channels[-1] < 4:
            raise ValueError(f"the last gfe width must be >= 4 (pyramid pooling quarters it), got "
                             f"{self.gfe_channels[-1]}")
        h, w = self.low_res_size()
        if not self.pool_bins or min(self.pool_bins) < 1 or any(h % b or w % b for b in self.pool_bins):
            good = [b for b in range(1, min(h, w) + 1) if h % b == 0 and w % b == 0]
            raise ValueError(f"pool_bins {self.pool_bins} must divide the {h}x{w} map the pyramid pools at input "
                             f"{self.input_hw[0]}x{self.input_hw[1]}; bins that do: {good}")

    def low_res_size(self) -> tuple[int, int]:
        """The (H, W) of the global feature extractor's output at ``input_hw`` (3x3 stride-2 convs, padding 1)."""
        h, w = self.input_hw
        for _ in range(3 + self.gfe_strides.count(2)):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        return h, w

    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_chans, *self.input_hw)

    def replace(self, **changes: Any) -> FastSCNNConfig:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"arch": "fastscnn", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FastSCNNConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        return config_from_dict(cls, "fastscnn", d)


# --- BiSeNet ------------------------------------------------------------------------------------------------------


class AttentionRefinement(nn.Module):
    """3x3 conv-BN-ReLU to ``cout``, then a channel gate from the pooled map (1x1 conv, sigmoid)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 3)
        self.gate = nn.Sequential(nn.Conv2d(cout, cout, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.gate(x.mean((2, 3), keepdim=True))


class FeatureFusion(nn.Module):
    """Concatenate, 1x1 conv-BN-ReLU, channel attention (pool, 1x1, ReLU, 1x1, sigmoid): x + x * gate."""

    def __init__(self, cin: int, cout: int, reduction: int = 4):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 1)
        self.gate = nn.Sequential(nn.Conv2d(cout, cout // reduction, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(cout // reduction, cout, 1), nn.Sigmoid())

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat((spatial, context), dim=1))
        return x + x * self.gate(x.mean((2, 3), keepdim=True))


class SegmentationHead(nn.Sequential):
    """3x3 conv-BN-ReLU, 1x1 conv to the logits."""

    def __init__(self, cin: int, mid: int, classes: int):
        super().__init__(conv_bn_relu(cin, mid, 3), nn.Conv2d(mid, classes, 1))


class BiSeNet(nn.Module):
    """BiSeNet built from a :class:`BiSeNetConfig` (kept in ``.config``); ``forward`` returns (B, K + 1, H, W)."""

    def __init__(self, cfg: BiSeNetConfig):
        super().__init__()
        self.config = cfg
        self.backbone = Backbone(cfg.backbone, BISENET_STRIDES)
        c16, c32 = self.backbone.out_channels
        sc, cc = cfg.spatial_channels, cfg.context_channels
        self.spatial = nn.Sequential(*(conv_bn_relu(a, b, 3, 2) for a, b in zip((cfg.in_chans, *sc[:-1]), sc,
                                                                                strict=True)))
        self.global_context = nn.Sequential(nn.Conv2d(c32, cc, 1), nn.ReLU(inplace=True))
        self.arm32, self.arm16 = AttentionRefinement(c32, cc), AttentionRefinement(c16, cc)
        self.refine32, self.refine16 = conv_bn_relu(cc, cc), conv_bn_relu(cc, cc)
        self.fusion = FeatureFusion(sc[-1] + cc, cfg.fusion_channels)
        self.head = SegmentationHead(cfg.fusion_channels, cfg.head_channels, cfg.num_classes + 1)
        for m in (self.spatial, self.global_context, self.arm32, self.arm16, self.refine32, self.refine16,
                  self.fusion, self.head):
            init_convs(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial(x)
        f16, f32 = self.backbone(x)
        c32 = self.arm32(f32) + self.global_context(f32.mean((2, 3), keepdim=True))
        c16 = self.arm16(f16) + self.refine32(resize(c32, f16, "nearest"))
        context = self.refine16(resize(c16, spatial, "nearest"))
        return resize(self.head(self.fusion(spatial, context)), x)


# --- Fast-SCNN ----------------------------------------------------------------------------------------------------


class PyramidPooling(nn.Module):
    """Average pools to ``b x b`` bins, 1x1 conv + ReLU to a quarter of the width, bilinear upsampling, concatenated
    with the input, 1x1 conv-BN-ReLU to ``cout``."""

    def __init__(self, cin: int, cout: int, bins: tuple[int, ...]):
        super().__init__()
        self.bins = bins
        self.branches = nn.ModuleList(nn.Sequential(nn.Conv2d(cin, cin // 4, 1), nn.ReLU(inplace=True))
                                      for _ in bins)
        self.out = conv_bn_relu(cin + len(bins) * (cin // 4), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if any(h % b or w % b for b in self.bins):
            raise ValueError(f"pyramid pooling: bins {self.bins} do not divide the {h}x{w} map; use an input whose "
                             "stride-32 map they divide (see FastSCNNConfig.pool_bins)")
        pooled = [resize(branch(F.avg_pool2d(x, (h // b, w // b))), x) for branch, b in zip(self.branches, self.bins,
                                                                                          strict=True)]
        return self.out(torch.cat((x, *pooled), dim=1))


class FastSCNNFusion(nn.Module):
    """Low-resolution map upsampled, depthwise 3x3 conv-BN-ReLU, 1x1 conv-BN; plus a 1x1 conv-BN of the
    high-resolution map; ReLU."""

    def __init__(self, c_high: int, c_low: int, cout: int):
        super().__init__()
        self.low = nn.Sequential(conv_bn_relu(c_low, c_low, 3, groups=c_low), conv_bn_act(c_low, cout, 1, act=None))
        self.high = conv_bn_act(c_high, cout, 1, act=None)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return F.relu(self.high(high) + self.low(resize(low, high)))


class FastSCNN(nn.Module):
    """Fast-SCNN built from a :class:`FastSCNNConfig` (kept in ``.config``); ``forward`` returns (B, K + 1, H, W)."""

    def __init__(self, cfg: FastSCNNConfig):
        super().__init__()
        self.config = cfg
        c0, c1, c2 = cfg.downsample_channels
        self.downsample = nn.Sequential(conv_bn_relu(cfg.in_chans, c0, 3, 2), SeparableConv(c0, c1, 2),
                                        SeparableConv(c1, c2, 2))
        blocks, cin = [], c2
        for c, d, s in zip(cfg.gfe_channels, cfg.gfe_depths, cfg.gfe_strides, strict=True):
            blocks += [InvertedResidual(cin if i == 0 else c, c, s if i == 0 else 1, cfg.expand_ratio)
                       for i in range(d)]
            cin = c
        self.global_features = nn.Sequential(*blocks, PyramidPooling(cin, cin, cfg.pool_bins))
        self.fusion = FastSCNNFusion(c2, cin, cfg.fusion_channels)
        cc = cfg.classifier_channels
        self.classifier = nn.Sequential(SeparableConv(cfg.fusion_channels, cc), SeparableConv(cc, cc),
                                        nn.Dropout(cfg.dropout), nn.Conv2d(cc, cfg.num_classes + 1, 1))
        init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = self.downsample(x)
        low = self.global_features(high)
        return resize(self.classifier(self.fusion(high, low)), x)


SEGMENTERS = {"bisenet": (BiSeNetConfig, BiSeNet), "fastscnn": (FastSCNNConfig, FastSCNN)}
