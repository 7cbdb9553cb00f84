"""Random architectures of the zoo's families: other widths, depths, kernels and resolutions.

A latency predictor is trained and judged on networks like the ones users build, so the samples stay inside what
each family's builder accepts (windows that tile the maps, gnConv orders that divide the widths, even ShuffleNetV2
widths) and cover the zoo's own range: 28 to 224 pixels, 8 to 128 base channels, 1 to 6 blocks a stage.
:func:`random_config` returns a :class:`ModelConfig`, so a sample is a JSON file, not a pickled module.
"""

from __future__ import annotations

import random
from dataclasses import replace

from chipfit.models.config import BlockConfig, ModelConfig, StageConfig

FAMILIES = ("quadranet", "convnext", "hornet", "swin", "conv", "mobilenetv2", "shufflenetv2")
SIZES = (28, 32, 48, 64, 96, 128, 160, 224)

_MBV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))


def _divisible(v: float, d: int = 8) -> int:
    return max(d, int(v + d / 2) // d * d)


def random_config(rng: random.Random, family: str | None = None, input_size: int | None = None, *,
                  name: str = "") -> ModelConfig:
    """One random architecture; ``family`` and ``input_size`` are drawn from :data:`FAMILIES` / :data:`SIZES`
    when not given. Larger inputs draw narrower networks so that every sample runs in well under a second."""
    family = family or rng.choice(FAMILIES)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} to sample; families: {', '.join(FAMILIES)}")
    size = input_size or rng.choice(SIZES)
    in_chans = rng.choice((1, 3))
    classes = rng.choice((10, 100, 1000))
    label = name or f"{family}_r{rng.randrange(10**6):06d}_{size}"
    if family == "mobilenetv2":
        cfg = _mobilenetv2(rng, size, in_chans, classes, label)
    elif family == "shufflenetv2":
        cfg = _shufflenetv2(rng, size, in_chans, classes, label)
    else:
        cfg = _metaformer(rng, family, size, in_chans, classes, label)
    cfg.stage_sizes()  # raises if the sample does not fit its input (a bug here, not the caller's)
    return cfg


def _metaformer(rng: random.Random, family: str, size: int, in_chans: int, classes: int, name: str) -> ModelConfig:
    stem = 2 if size <= 64 else rng.choice((2, 4))  # stride 2 at 224 too: 112x112 maps, as the zoo's small nets
    base = rng.choice((8, 16, 24, 32, 48) if size <= 64 else (8, 16, 24, 32) if stem == 4 else (8, 16, 24))
    depths = [rng.randint(1, 2), rng.randint(1, 2), rng.randint(1, 4), rng.randint(1, 2)]
    kernel = rng.choice((3, 5, 7))
    ratio = rng.choice((2.0, 3.0, 4.0))
    scale = rng.choice((0.0, 1.0))
    maps = []
    m = size // stem
    for i in range(4):
        maps.append(m)
        m = max(m // 2, 1) if i < 3 else m
    kind = {"quadranet": "quadra", "convnext": "convnext", "hornet": "hor", "swin": "swin", "conv": "conv"}[family]
    blocks = []
    for i, mp in enumerate(maps):
        width = base * 2**i
        if kind == "swin":
            window = max(w for w in range(1, min(mp, 8) + 1) if mp % w == 0)
            heads = rng.choice([h for h in (1, 2, 4, 8) if width % h == 0])
            blocks.append(BlockConfig("swin", mlp_ratio=ratio, window_size=window, num_heads=heads, layer_scale=scale))
        elif kind == "hor":
            order = min(2 + i, max(o for o in range(1, 6) if width % 2 ** (o - 1) == 0))
            blocks.append(BlockConfig("hor", kernel, ratio, order=order, layer_scale=scale))
        else:
            blocks.append(BlockConfig(kind, kernel, ratio, layer_scale=scale))
    stages = tuple(StageConfig(d, base * 2**i, b, stride=1 if i == 0 else 2)
                   for i, (d, b) in enumerate(zip(depths, blocks, strict=True)))
    return ModelConfig("metaformer", stages, classes, in_chans, stem_kernel=stem, stem_stride=stem, input_size=size,
                       name=name)


def _mobilenetv2(rng: random.Random, size: int, in_chans: int, classes: int, name: str) -> ModelConfig:
    width = rng.choice((0.35, 0.5, 0.75, 1.0) if size <= 96 else (0.35, 0.5))
    kernel = rng.choice((3, 5))
    stages = []
    for t, c, n, s in _MBV2_STAGES:
        expand = t if t == 1 else rng.choice((3, 4, 6))
        stages.append(StageConfig(rng.randint(1, n), _divisible(c * width), BlockConfig("mbv2", kernel,
                                                                                         expand_ratio=expand), s))
    stem = 1 if size <= 64 else 2
    return ModelConfig("mobilenetv2", tuple(stages), classes, in_chans, stem_kernel=3, stem_stride=stem,
                       stem_channels=_divisible(32 * width), head_channels=rng.choice((512, 1024, 1280)),
                       input_size=size, name=name)


def _shufflenetv2(rng: random.Random, size: int, in_chans: int, classes: int, name: str) -> ModelConfig:
    base = rng.choice((24, 48, 64, 96) if size <= 96 else (24, 48))
    kernel = rng.choice((3, 5))
    depths = (rng.randint(1, 4), rng.randint(2, 8), rng.randint(1, 4))
    large = size > 64
    stages = tuple(StageConfig(d, base * 2**i, BlockConfig("shufflev2", kernel), stride=2)
                   for i, d in enumerate(depths))
    return ModelConfig("shufflenetv2", stages, classes, in_chans, stem_kernel=3, stem_stride=2 if large else 1,
                       stem_channels=24, stem_pool=large, head_channels=rng.choice((512, 1024)), input_size=size,
                       name=name)


def with_input_size(cfg: ModelConfig, size: int) -> ModelConfig:
    """``cfg`` at another input side (the builder checks that its stages still fit)."""
    return replace(cfg, input_size=size)
