"""Architectures as data: frozen dataclasses for blocks, stages and models, with ``to_dict``/``from_dict`` (JSON).

One builder (:func:`chipfit.models.build.build_model`) turns a :class:`ModelConfig` into a network; registered
constructors only fill a config. A searched or compressed network is a config file, never a pickled module.

Every check that needs only the config runs when the config is made (``__post_init__``), so an impossible
architecture fails before any module is built, with a ``ValueError`` naming the stage and the value: unknown block
kinds, negative depths, a gnConv order too high for the width, heads that do not divide the width, a window larger
than its feature map at ``input_size``, a downsampler with nothing left to halve.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

BLOCK_KINDS = ("quadra", "hor", "swin", "convnext", "conv", "skip", "mbv2", "shufflev2")
METAFORMER_KINDS = ("quadra", "hor", "swin", "convnext", "conv", "skip")
# The macro skeleton of a network and the block kinds it can hold.
FAMILY_KINDS = {"metaformer": METAFORMER_KINDS, "mobilenetv2": ("mbv2",), "shufflenetv2": ("shufflev2",)}
FAMILIES = tuple(FAMILY_KINDS)

# Keys written by earlier versions of these configs, read as their current names (configs/ and checkpoints hold them).
_RENAMED = {"quadratic_mlp": "quadratic_channel_mixing"}


@dataclass(frozen=True)
class BlockConfig:
    """One block type and its options; ``kind`` says which fields matter.

    Attributes:
        kind: quadra (QuadraBlock), hor (HorBlock, gnConv), swin (SwinBlock, window attention), convnext (ConvNeXt
            block), conv (the QuadraBlock shape with a plain depthwise conv), skip (the QuadraBlock shape with no
            spatial mixing), mbv2 (MobileNetV2 inverted residual), shufflev2 (ShuffleNetV2 unit).
        kernel_size: spatial kernel (quadra, conv, convnext, hor; the depthwise conv of mbv2 and shufflev2).
        mlp_ratio: channel-MLP expansion r, C -> rC -> C (the six metaformer kinds).
        order: gnConv order n (hor); the width must be a multiple of 2^(n-1).
        window_size: attention window (swin); shifts alternate 0 / window // 2 within a stage.
        num_heads: attention heads (swin); 0 picks width // 32.
        quadratic_channel_mixing: make the first MLP layer a quadratic 1x1 conv (the paper's QuadraFC ablation).
        memory_efficient: quadratic layers recompute in backward instead of storing intermediates.
        layer_scale: initial layer-scale gamma (metaformer kinds); 0 disables layer scale.
        expand_ratio: inverted-residual expansion t (mbv2).
    """

    kind: str = "quadra"
    kernel_size: int = 7
    mlp_ratio: float = 4.0
    order: int = 3
    window_size: int = 7
    num_heads: int = 0
    quadratic_channel_mixing: bool = False
    memory_efficient: bool = True
    layer_scale: float = 1e-6
    expand_ratio: int = 6

    def __post_init__(self):
        if self.kind not in BLOCK_KINDS:
            hint = difflib.get_close_matches(self.kind, BLOCK_KINDS, n=1)
            raise ValueError(f"unknown block kind {self.kind!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; kinds: {', '.join(BLOCK_KINDS)}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number (size-preserving padding), got "
                             f"{self.kernel_size}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.order < 1:
            raise ValueError(f"gnConv order must be >= 1, got {self.order}")
        if self.window_size < 1 or self.num_heads < 0:
            raise ValueError(f"window_size must be >= 1 and num_heads >= 0 (0: width // 32), got "
                             f"window_size={self.window_size}, num_heads={self.num_heads}")
        if self.layer_scale < 0:
            raise ValueError(f"layer_scale must be >= 0 (0 disables it), got {self.layer_scale}")
        if self.expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {self.expand_ratio}")

    def heads(self, channels: int) -> int:
        """The attention heads this block uses at ``channels`` wide."""
        return self.num_heads or max(channels // 32, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "block") -> BlockConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        d = {_RENAMED.get(k, k): v for k, v in d.items()}
        _check_keys(cls, d, where)
        return cls(**d)


@dataclass(frozen=True)
class StageConfig:
    """A stage: ``depth`` blocks of ``channels`` width.

    ``stride`` 2 downsamples at the stage's start (metaformer: LayerNorm + 2x2 conv stride 2; mbv2 and shufflev2: the
    first block has stride 2); 1 keeps the map size. The first stage of the zoo's networks has stride 1: their stem
    has downsampled already.
    """

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "stage") -> StageConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        d = dict(d)
        _check_keys(cls, d, where)
        block = BlockConfig.from_dict(d.pop("block", {}), f"{where} block")
        return cls(block=block, **d)


@dataclass(frozen=True)
class ModelConfig:
    """A whole network.

    Attributes:
        family: the macro skeleton. metaformer: patchify stem (conv + LayerNorm), LayerNorm + 2x2 conv stride-2
            downsamplers, pool + LayerNorm + linear head; holds QuadraNet, HorNet, ConvNeXt and Swin-like networks.
            mobilenetv2, shufflenetv2: those papers' stems (conv + BN + ReLU6 / ReLU), a final 1x1 conv of
            ``head_channels`` (+ BN + activation), pool and linear.
        stages: the stages, in order.
        num_classes, in_chans: classifier outputs and input channels.
        stem_kernel, stem_stride, stem_channels: the stem conv (metaformer: a kernel equal to the stride is a
            patchify conv; mobilenetv2, shufflenetv2: an odd kernel, padded to keep ceil(size / stride)); 0 channels
            means the default (metaformer: the first stage's width, mobilenetv2: 32, shufflenetv2: 24).
        stem_pool: a 3x3 stride-2 max-pool after the stem (ShuffleNetV2 at 224).
        head_channels: width of the last 1x1 conv before pooling (mobilenetv2: 0 = 1280, shufflenetv2: 0 = 1024).
        drop_path_rate: stochastic depth, rising linearly over the blocks from 0 to this value.
        input_size: the square image size the network is meant for; windows and downsamplers are checked against it.
        name: a label (the registry name when built from the registry).
    """

    family: str
    stages: tuple[StageConfig, ...]
    num_classes: int = 1000
    in_chans: int = 3
    stem_kernel: int = 4
    stem_stride: int = 4
    stem_channels: int = 0
    stem_pool: bool = False
    head_channels: int = 0
    drop_path_rate: float = 0.0
    input_size: int = 224
    name: str = ""

    def __post_init__(self):
        if self.family not in FAMILY_KINDS:
            raise ValueError(f"unknown family {self.family!r}; families: {', '.join(FAMILIES)}")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise ValueError("a model needs at least one stage")
        if self.num_classes < 1 or self.in_chans < 1:
            raise ValueError(f"num_classes and in_chans must be >= 1, got {self.num_classes} and {self.in_chans}")
        if self.stem_kernel < 1 or self.stem_stride < 1 or self.stem_channels < 0 or self.head_channels < 0:
            raise ValueError(f"stem_kernel and stem_stride must be >= 1, stem_channels and head_channels >= 0 (0: the "
                             f"default), got {self.stem_kernel}, {self.stem_stride}, {self.stem_channels}, "
                             f"{self.head_channels}")
        if self.family != "metaformer" and self.stem_kernel % 2 == 0:
            raise ValueError(f"{self.family}: stem_kernel must be odd (padded to keep the size), got "
                             f"{self.stem_kernel}")
        if not 0 <= self.drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must lie in [0, 1), got {self.drop_path_rate}")
        if self.input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {self.input_size}")
        self._check_stages()

    def stem_width(self) -> int:
        """The channels the stem produces."""
        default = {"metaformer": self.stages[0].channels, "mobilenetv2": 32, "shufflenetv2": 24}[self.family]
        return self.stem_channels or default

    def head_width(self) -> int:
        """The channels the classifier sees."""
        if self.family == "metaformer":
            return self.stages[-1].channels  # its downsampler or projection sets the width even at depth 0
        return self.head_channels or {"mobilenetv2": 1280, "shufflenetv2": 1024}[self.family]

    def stem_size(self) -> int:
        """The side of the map the stem (and its pool) produces at ``input_size``."""
        k, s = self.stem_kernel, self.stem_stride
        pad = ((k - s + 1) // 2 if k > s else 0) if self.family == "metaformer" else k // 2
        size = (self.input_size + 2 * pad - k) // s + 1
        if size < 1:
            raise ValueError(f"input_size {self.input_size} is smaller than the stem's {k}x{k} kernel")
        return math.ceil(size / 2) if self.stem_pool else size

    def stage_sizes(self) -> tuple[int, ...]:
        """The side of each stage's feature map at ``input_size`` (after its downsampling)."""
        size, sizes = self.stem_size(), []
        for i, s in enumerate(self.stages):
            if s.stride == 2:
                if size < 2:
                    raise ValueError(f"stage {i}: the map is {size}x{size} at input {self.input_size}, too small for "
                                     "another stride-2 downsampler; use fewer stages, stride 1 or a smaller stem "
                                     "stride")
                # metaformer: 2x2 conv stride 2 (floor); mbv2/shufflev2: 3x3 conv stride 2, padding 1 (ceil)
                size = size // 2 if self.family == "metaformer" else math.ceil(size / 2)
            sizes.append(size)
        return tuple(sizes)

    def _check_stages(self) -> None:
        kinds = FAMILY_KINDS[self.family]
        sizes = self.stage_sizes()
        cin = self.stem_width()
        for i, (s, size) in enumerate(zip(self.stages, sizes, strict=True)):
            b = s.block
            if b.kind not in kinds:
                raise ValueError(f"stage {i}: block kind {b.kind!r} does not fit the {self.family} family; it takes "
                                 f"{', '.join(kinds)}")
            if b.kind == "hor" and s.channels % 2 ** (b.order - 1):
                raise ValueError(f"stage {i}: gnConv order {b.order} too high for width {s.channels} (the width must "
                                 f"be a multiple of 2^(order-1) = {2 ** (b.order - 1)})")
            if b.kind == "swin":
                if s.channels % b.heads(s.channels):
                    raise ValueError(f"stage {i}: width {s.channels} is not divisible by num_heads "
                                     f"{b.heads(s.channels)}")
                if b.window_size > size:
                    raise ValueError(f"stage {i}: window larger than the map (window {b.window_size}, map {size}x"
                                     f"{size} at input {self.input_size}); use window_size <= {size}")
            if b.kind == "shufflev2":
                if s.channels % 2:
                    raise ValueError(f"stage {i}: ShuffleNetV2 splits channels in two, width {s.channels} is odd")
                if s.depth and s.stride == 1 and cin != s.channels:
                    raise ValueError(f"stage {i}: a stride-1 ShuffleNetV2 unit keeps its width ({cin}), got "
                                     f"{s.channels}; use stride 2 to change it")
            if s.depth:
                cin = s.channels

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (and checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys are an error naming them."""
        d = dict(d)
        _check_keys(cls, d, "model config")
        stages = tuple(StageConfig.from_dict(s, f"stage {i}") for i, s in enumerate(d.pop("stages", ())))
        return cls(stages=stages, **d)


def _check_keys(cls, d: dict, where: str) -> None:
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(names)}")
