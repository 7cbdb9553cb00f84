"""Architectures as data: frozen dataclasses for blocks, stages and models, with ``to_dict``/``from_dict`` (JSON).

One builder (``chipfit.models.build.build_model``) turns a :class:`ModelConfig` into a network; registered
constructors only fill a config. A searched or compressed network is a config file, never a pickled module.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

BLOCK_KINDS = ("quadra", "hor", "swin", "convnext", "conv", "skip", "mbv2", "shufflev2")
FAMILIES = ("metaformer", "mobilenetv2", "shufflenetv2")


@dataclass(frozen=True)
class BlockConfig:
    """One block type and its options.

    Attributes:
        kind: quadra (QuadraBlock), hor (HorBlock, gnConv), swin (SwinBlock, window attention), convnext (ConvNeXt),
            conv (the QuadraBlock shape with a plain depthwise conv), skip (no spatial mixing), mbv2 (MobileNetV2
            inverted residual), shufflev2 (ShuffleNetV2 unit).
        kernel_size: spatial kernel of the mixer (quadra, conv, convnext, hor, mbv2 and shufflev2 depthwise).
        mlp_ratio: channel-MLP expansion (metaformer blocks).
        order: gnConv order (hor).
        window_size, num_heads: window attention (swin); shifts alternate 0 / window // 2 within a stage.
        quadratic_mlp: make the first MLP layer quadratic (the paper's QuadraFC ablation).
        memory_efficient: quadratic layers recompute in backward instead of storing intermediates.
        layer_scale: initial layer-scale gamma (0 disables it).
        expand_ratio: inverted-residual expansion (mbv2).
    """

    kind: str = "quadra"
    kernel_size: int = 7
    mlp_ratio: float = 4.0
    order: int = 3
    window_size: int = 7
    num_heads: int = 0
    quadratic_mlp: bool = False
    memory_efficient: bool = True
    layer_scale: float = 1e-6
    expand_ratio: int = 6

    def __post_init__(self):
        if self.kind not in BLOCK_KINDS:
            hint = difflib.get_close_matches(self.kind, BLOCK_KINDS, n=1)
            raise ValueError(f"unknown block kind {self.kind!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; kinds: {', '.join(BLOCK_KINDS)}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {self.kernel_size}")
        if self.mlp_ratio <= 0 or self.expand_ratio < 1:
            raise ValueError("mlp_ratio must be > 0 and expand_ratio >= 1")


@dataclass(frozen=True)
class StageConfig:
    """A stage: ``depth`` blocks of ``channels`` width; ``stride`` 2 downsamples at its start (1 keeps the size)."""

    depth: int
    channels: int
    block: BlockConfig = field(default_factory=BlockConfig)
    stride: int = 2

    def __post_init__(self):
        if self.depth < 0:
            raise ValueError(f"stage depth must be >= 0, got {self.depth}")
        if self.channels < 1:
            raise ValueError(f"stage channels must be >= 1, got {self.channels}")
        if self.stride not in (1, 2):
            raise ValueError(f"stage stride must be 1 or 2, got {self.stride}")


@dataclass(frozen=True)
class ModelConfig:
    """A whole network.

    Attributes:
        family: metaformer (patchify stem, LayerNorm + 2x2 conv downsamplers, QuadraNet/HorNet/ConvNeXt/Swin),
            mobilenetv2 or shufflenetv2 (their own stems and heads).
        stages: the stages, in order.
        num_classes, in_chans: classifier outputs and input channels.
        stem_kernel, stem_stride, stem_channels: the stem conv (metaformer: kernel = stride, patchify; 0 channels =
            the first stage's width).
        head_channels: width of the last 1x1 conv before pooling (mobilenetv2, shufflenetv2).
        drop_path_rate: stochastic depth, rising linearly over blocks to this value.
        input_size: the image size the network is meant for (checks windows against maps).
        name: a label (the registry name when built from the registry).
    """

    family: str
    stages: tuple[StageConfig, ...]
    num_classes: int = 1000
    in_chans: int = 3
    stem_kernel: int = 4
    stem_stride: int = 4
    stem_channels: int = 0
    head_channels: int = 0
    drop_path_rate: float = 0.0
    input_size: int = 224
    name: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; families: {', '.join(FAMILIES)}")
        if not self.stages:
            raise ValueError("a model needs at least one stage")
        if self.num_classes < 1 or self.in_chans < 1:
            raise ValueError("num_classes and in_chans must be >= 1")
        if not 0 <= self.drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must lie in [0, 1), got {self.drop_path_rate}")
        object.__setattr__(self, "stages", tuple(self.stages))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        d = dict(d)
        _check_keys(cls, d, "model config")
        stages = []
        for i, s in enumerate(d.pop("stages", ())):
            s = dict(s)
            _check_keys(StageConfig, s, f"stage {i}")
            b = dict(s.pop("block", {}))
            _check_keys(BlockConfig, b, f"stage {i} block")
            stages.append(StageConfig(block=BlockConfig(**b), **s))
        return cls(stages=tuple(stages), **d)

    def replace(self, **changes: Any) -> ModelConfig:
        from dataclasses import replace

        return replace(self, **changes)


def _check_keys(cls, d: dict, where: str) -> None:
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(names)}")
