"""Multi-scale backbones: a zoo :class:`~chipfit.models.config.ModelConfig` without its classifier, returning the
feature maps at strides 4/8/16/32 (or a subset) for segmentation and detection heads.

Which stage gives which stride follows from the config alone (:func:`feature_taps`): the stem's stride (times 2 with
its max-pool), then each stage's. The tap at a stride is the last stage that reaches it, or the stem itself where no
stage does (ShuffleNetV2's stride-4 map is its pooled stem). For MobileNetV2 the taps are stages 1/2/4/6 (24, 32, 96,
320 channels at width 1.0); for ShuffleNetV2 the stem, then its three stages; for a metaformer with a stride-4 stem its
four stages, each tap followed by a LayerNorm (as ConvNeXt's and HorNet's dense backbones add; BatchNorm families
end their stages with BatchNorm already). MobileNetV2's and ShuffleNetV2's last 1x1 conv (1280 / 1024 channels) is a
classifier's and is dropped.

The zoo's small variants (``*_s28``, ``*_s32``) have stride-1 or stride-2 stems, made for 28x28 digits: on a dense
input their stages sit at strides 2-16, and their finest maps cost most. :data:`DENSE_BACKBONES` holds configs with
stride-4 maps first, made for 96x96 grey scenes (``*_s``, of similar MACs: see ``tests/models/test_dense.py``) and the
zoo's ImageNet shapes for large inputs (``quadranet36_xxs``, ``mobilenetv2_100``, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from chipfit.layers import LayerNorm2d
from chipfit.models._common import widths
from chipfit.models.build import build_model
from chipfit.models.config import BlockConfig, ModelConfig, StageConfig
from chipfit.models.mobilenetv2 import MOBILENETV2_STAGES, make_divisible
from chipfit.models.quadranet import QUADRANET_DEPTHS, QUADRANET_WIDTHS
from chipfit.models.shufflenetv2 import SHUFFLENETV2_WIDTHS

DENSE_STRIDES = (4, 8, 16, 32)
STEM = -1  # the tap index of the stem (and its pool)


def feature_taps(cfg: ModelConfig, strides: Sequence[int] = DENSE_STRIDES) -> tuple[tuple[int, int], ...]:
    """For each stride, ``(stage index, channels)`` of the map the backbone gives there (:data:`STEM` for the stem).

    Raises:
        ValueError: the network never reaches one of the strides (a stem of stride 1 or 2 with too few stride-2
            stages, for instance), naming the strides it has.
    """
    stride = cfg.stem_stride * (2 if cfg.stem_pool else 1)
    have: dict[int, tuple[int, int]] = {stride: (STEM, cfg.stem_width())}
    cin = cfg.stem_width()
    for i, s in enumerate(cfg.stages):
        stride *= s.stride
        # as the builder: a metaformer stage's downsampler or projection sets its width even at depth 0
        cin = s.channels if s.depth or cfg.family == "metaformer" else cin
        have[stride] = (i, cin)
    missing = [s for s in strides if s not in have]
    if missing:
        raise ValueError(f"backbone {cfg.name or cfg.family!r} gives maps at strides {sorted(have)}, not at "
                         f"{missing}: dense heads need {tuple(strides)}; use a stem of stride 4 (metaformer: "
                         "stem_kernel=stem_stride=4) or the stride-2 stages MobileNetV2 and ShuffleNetV2 have at 224")
    return tuple(have[s] for s in strides)


def feature_sizes(cfg: ModelConfig, height: int, width: int,
                  strides: Sequence[int] = DENSE_STRIDES) -> tuple[tuple[int, int], ...]:
    """The (H, W) of each tap's map on a ``height`` x ``width`` input (the builder's floor/ceil arithmetic)."""
    taps = feature_taps(cfg, strides)

    def sides(n: int) -> tuple[int, ...]:
        c = cfg.replace(input_size=n)  # stem_size and stage_sizes are the config's own arithmetic, per side
        return (c.stem_size(), *c.stage_sizes())

    hs, ws = sides(height), sides(width)
    return tuple((hs[i + 1], ws[i + 1]) for i, _ in taps)


class Backbone(nn.Module):
    """The stem and stages of a zoo network, returning the maps at ``strides`` (a list, finest first).

    Attributes:
        config: the backbone's ModelConfig (its classifier head is not built into this module).
        strides: the strides of the returned maps.
        out_channels: their channels.
    """

    def __init__(self, cfg: ModelConfig, strides: Sequence[int] = DENSE_STRIDES):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"Backbone takes a ModelConfig, got {type(cfg).__name__}")
        if list(strides) != sorted(set(strides)):
            raise ValueError(f"strides must rise strictly, got {tuple(strides)}")
        taps = feature_taps(cfg, strides)
        net = build_model(cfg)
        self.config = cfg
        self.strides = tuple(strides)
        self.out_channels = tuple(c for _, c in taps)
        self._taps = tuple(i for i, _ in taps)
        self.stem = net.stem
        self.stages = nn.ModuleList(net.stages[:max(self._taps) + 1])  # later stages and the classifier: unused
        norm = cfg.family == "metaformer"
        self.norms = nn.ModuleList(LayerNorm2d(c) if norm else nn.Identity() for c in self.out_channels)

    def feature_sizes(self, height: int, width: int) -> tuple[tuple[int, int], ...]:
        """The (H, W) of each returned map on a ``height`` x ``width`` input."""
        return feature_sizes(self.config, height, width, self.strides)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        maps = {STEM: x}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            maps[i] = x
        return [norm(maps[i]) for norm, i in zip(self.norms, self._taps, strict=True)]


# --- dense backbone configs --------------------------------------------------------------------------------------

# 96x96 grey scenes (the ``*_s`` dense models): stride-4 maps are 24x24, stride-32 ones 3x3.
DENSE_SMALL_SIZE = 96
DENSE_SMALL_CHANS = 1


def _metaformer(name: str, kind: str, c: int, depths: Sequence[int], kernel: int, mlp_ratio: float,
                layer_scale: float, in_chans: int, input_size: int) -> ModelConfig:
    block = BlockConfig(kind, kernel, mlp_ratio, layer_scale=layer_scale)
    stages = tuple(StageConfig(d, w, block, stride=1 if i == 0 else 2)
                   for i, (d, w) in enumerate(zip(depths, widths(c), strict=True)))
    return ModelConfig("metaformer", stages, 1, in_chans, stem_kernel=4, stem_stride=4, input_size=input_size,
                       name=name)


def _mobilenetv2(name: str, width: float, in_chans: int, input_size: int) -> ModelConfig:
    stages = tuple(StageConfig(n, make_divisible(c * width), BlockConfig("mbv2", 3, expand_ratio=t), s)
                   for t, c, n, s in MOBILENETV2_STAGES)
    return ModelConfig("mobilenetv2", stages, 1, in_chans, stem_kernel=3, stem_stride=2,
                       stem_channels=make_divisible(32 * width), input_size=input_size, name=name)


def _shufflenetv2(name: str, channels: Sequence[int], depths: Sequence[int], in_chans: int,
                  input_size: int) -> ModelConfig:
    stages = tuple(StageConfig(d, c, BlockConfig("shufflev2", 3), stride=2) for d, c in zip(depths, channels,
                                                                                           strict=True))
    return ModelConfig("shufflenetv2", stages, 1, in_chans, stem_kernel=3, stem_stride=2, stem_channels=24,
                       stem_pool=True, input_size=input_size, name=name)


def quadranet_s(in_chans: int = DENSE_SMALL_CHANS, input_size: int = DENSE_SMALL_SIZE) -> ModelConfig:
    """QuadraNet for 96x96 dense tasks: stem 4x4 stride 4, C=24, depths [1,1,3,1], 5x5 quadratic mixer, MLP ratio 3."""
    return _metaformer("quadranet_s", "quadra", 24, (1, 1, 3, 1), 5, 3.0, 1.0, in_chans, input_size)


def convnext_s(in_chans: int = DENSE_SMALL_CHANS, input_size: int = DENSE_SMALL_SIZE) -> ModelConfig:
    """ConvNeXt for 96x96 dense tasks: stem 4x4 stride 4, C=24, depths [1,1,3,1], 7x7 depthwise, MLP ratio 3.

    The same skeleton as ``quadranet_s``; its mixer costs a third of the quadratic one's, a small part of each
    block (the MLP dominates), so both stay within a few percent of each other."""
    return _metaformer("convnext_s", "convnext", 24, (1, 1, 3, 1), 7, 3.0, 1.0, in_chans, input_size)


def mobilenetv2_s(in_chans: int = DENSE_SMALL_CHANS, input_size: int = DENSE_SMALL_SIZE) -> ModelConfig:
    """MobileNetV2 0.5 for 96x96 dense tasks: stem 3x3 stride 2, the paper's stages (taps 16/16/48/160 channels)."""
    return _mobilenetv2("mobilenetv2_s", 0.5, in_chans, input_size)


def shufflenetv2_s(in_chans: int = DENSE_SMALL_CHANS, input_size: int = DENSE_SMALL_SIZE) -> ModelConfig:
    """ShuffleNetV2 for 96x96 dense tasks: stem 3x3 stride 2 + max-pool, units 4/8/4 of widths 96/192/384."""
    return _shufflenetv2("shufflenetv2_s", (96, 192, 384), (4, 8, 4), in_chans, input_size)


def quadranet36_xxs(in_chans: int = 3, input_size: int = 224) -> ModelConfig:
    """QuadraNet36-XXS (C=16, depths [3,3,27,3], 7x7 quadratic mixer), as in the zoo."""
    block = BlockConfig("quadra", 7, 4.0)
    stages = tuple(StageConfig(d, w, block, stride=1 if i == 0 else 2) for i, (d, w) in
                   enumerate(zip(QUADRANET_DEPTHS[36], widths(QUADRANET_WIDTHS["xxs"]), strict=True)))
    return ModelConfig("metaformer", stages, 1, in_chans, input_size=input_size, name="quadranet36_xxs")


def mobilenetv2_100(in_chans: int = 3, input_size: int = 224) -> ModelConfig:
    """MobileNetV2 1.0, as in the zoo (taps 24/32/96/320 channels)."""
    return _mobilenetv2("mobilenetv2_100", 1.0, in_chans, input_size)


def shufflenetv2_x1_0(in_chans: int = 3, input_size: int = 224) -> ModelConfig:
    """ShuffleNetV2 x1.0, as in the zoo (taps 24/116/232/464 channels)."""
    return _shufflenetv2("shufflenetv2_x1_0", SHUFFLENETV2_WIDTHS["x1_0"], (4, 8, 4), in_chans, input_size)


def convnext_t(in_chans: int = 3, input_size: int = 224) -> ModelConfig:
    """ConvNeXt-T (C=96, depths [3,3,9,3], 7x7 depthwise), as in the zoo."""
    return _metaformer("convnext_t", "convnext", 96, (3, 3, 9, 3), 7, 4.0, 1e-6, in_chans, input_size)


DENSE_BACKBONES: dict[str, Callable[..., ModelConfig]] = {
    f.__name__: f for f in (quadranet_s, convnext_s, mobilenetv2_s, shufflenetv2_s, quadranet36_xxs, mobilenetv2_100,
                            shufflenetv2_x1_0, convnext_t)
}


def dense_backbone(name: str, *, in_chans: int = DENSE_SMALL_CHANS, input_size: int = DENSE_SMALL_SIZE) -> ModelConfig:
    """The config of a named dense backbone (:data:`DENSE_BACKBONES`), e.g. ``dense_backbone("quadranet_s")``."""
    if name not in DENSE_BACKBONES:
        close = difflib.get_close_matches(name, list(DENSE_BACKBONES), n=1)
        raise ValueError(f"unknown dense backbone {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                         + f"; backbones: {', '.join(DENSE_BACKBONES)}, or any ModelConfig with stride-4 to -32 maps")
    return DENSE_BACKBONES[name](in_chans, input_size)
