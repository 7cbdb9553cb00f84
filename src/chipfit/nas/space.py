"""Search spaces as data: which block each slot may hold, which width each stage may take, which input sizes.

A :class:`SearchSpace` is a macro skeleton (the zoo's ``metaformer`` or ``mobilenetv2`` family) cut into stages of
block *slots*. Each slot holds one of the stage's candidate :class:`Op` (a QuadraBlock of some kernel and expansion,
an MBConv, ...) or ``identity`` (the slot is left out: fewer blocks). Each stage picks one of its widths, and the
network one of the input sizes. A point of the space is an :class:`Arch` (indices into those choices), and
:meth:`SearchSpace.expand` turns it into the zoo's :class:`~chipfit.models.ModelConfig`, so a found network is a
config file that ``chipfit train --model found.json`` trains and every verb accepts.

Spaces are frozen dataclasses with ``to_dict``/``from_dict``, read from JSON or YAML by :func:`load_space`; a bad
file names the field at fault. Built-in spaces (:data:`SPACES`):

- ``quadranet_s28`` / ``quadranet``: the QuadraNet paper's space (Xu et al., ASP-DAC 2024): per slot a QuadraBlock
  with kernel {3, 5, 7} and expansion {2, 4}, or identity; per stage three widths. ``_s28`` sits on the zoo's
  small metaformer skeleton for 28x28 grey images (stem 2x2 stride 2, maps 14/7/3/1); the plain one on the
  224x224 skeleton (stem 4x4 stride 4, maps 56/28/14/7).
- ``mbconv_s28`` / ``mbconv``: the ProxylessNAS space (Cai et al., ICLR 2019): per slot an MBConv (MobileNetV2
  inverted residual) with kernel {3, 5, 7} and expansion {3, 6}, or identity except in the first slot of a stage
  (it strides or changes the width); a fixed first MBConv of expansion 1, as in the paper.
"""

from __future__ import annotations

import difflib
import json
import math
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from chipfit.models.config import BlockConfig, ModelConfig, StageConfig

OP_KINDS = ("quadra", "conv", "skip", "convnext", "hor", "mbv2", "identity")
SPACE_FAMILIES = {"metaformer": ("quadra", "conv", "skip", "convnext", "hor", "identity"),
                  "mobilenetv2": ("mbv2", "identity")}


class SpaceError(ValueError):
    """A search space (or a point of one) that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Op:
    """One candidate of a block slot.

    Attributes:
        kind: a block kind of the zoo (``quadra``, ``conv``, ``skip``, ``convnext``, ``hor``, ``mbv2``) or
            ``identity`` (the slot holds no block).
        kernel_size: the spatial kernel (odd).
        expansion: the MLP ratio r of metaformer blocks (C -> rC -> C), the expansion t of MBConv.
    """

    kind: str
    kernel_size: int = 3
    expansion: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            hint = difflib.get_close_matches(str(self.kind), OP_KINDS, n=1)
            raise SpaceError(f"op kind {self.kind!r} is not one of {', '.join(OP_KINDS)}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise SpaceError(f"op kernel_size must be a positive odd integer, got {self.kernel_size!r}")
        if not isinstance(self.expansion, (int, float)) or self.expansion <= 0:
            raise SpaceError(f"op expansion must be a number > 0, got {self.expansion!r}")
        if self.kind == "mbv2" and float(self.expansion) != int(self.expansion):
            raise SpaceError(f"an mbv2 op's expansion must be a whole number, got {self.expansion!r}")

    @property
    def is_identity(self) -> bool:
        return self.kind == "identity"

    def label(self) -> str:
        """``quadra_k3_e2``, ``mbv2_k5_e6``, ``identity``: a name for tables and plots."""
        if self.is_identity:
            return "identity"
        e = int(self.expansion) if float(self.expansion).is_integer() else self.expansion
        return f"{self.kind}_k{self.kernel_size}_e{e}"

    def block(self, layer_scale: float, memory_efficient: bool) -> BlockConfig:
        """The zoo's block config of this op (not for ``identity``)."""
        if self.is_identity:
            raise SpaceError("an identity op has no block")
        if self.kind == "mbv2":
            return BlockConfig("mbv2", self.kernel_size, expand_ratio=int(self.expansion))
        return BlockConfig(self.kind, self.kernel_size, float(self.expansion), layer_scale=layer_scale,
                           memory_efficient=memory_efficient)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "op") -> Op:
        if isinstance(d, str):  # "identity" or a label such as "quadra_k3_e2"
            return parse_op(d, where)
        _check_mapping(cls, d, where)
        try:
            return cls(**d)
        except SpaceError as e:
            raise SpaceError(f"{where}: {e}") from None
        except TypeError as e:
            raise SpaceError(f"{where}: {e}") from None


def parse_op(text: str, where: str = "op") -> Op:
    """``identity`` or ``KIND_kK_eE`` (``quadra_k5_e4``) -> :class:`Op`."""
    if text == "identity":
        return Op("identity")
    parts = text.rsplit("_", 2)
    try:
        kind, k, e = parts
        if not (k.startswith("k") and e.startswith("e")):
            raise ValueError
        return Op(kind, int(k[1:]), float(e[1:]))
    except (ValueError, SpaceError) as err:
        detail = f" ({err})" if isinstance(err, SpaceError) else ""
        raise SpaceError(f"{where}: {text!r} is not an op label such as 'quadra_k3_e2' or 'identity'{detail}") from None


@dataclass(frozen=True)
class StageSpace:
    """One stage of a search space.

    Attributes:
        slots: block slots (the stage's largest depth).
        widths: the channel counts the stage may take.
        ops: the candidates of every slot, ``identity`` included where slots may stay empty.
        stride: 2 downsamples at the stage's start, 1 keeps the map.
        fixed_first: the first slot holds the first non-identity op always (MBConv stages: it strides or changes
            the width, so it cannot be left out). Its op is searched among the non-identity ops.
    """

    slots: int
    widths: tuple[int, ...]
    ops: tuple[Op, ...]
    stride: int = 2
    fixed_first: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "ops", tuple(self.ops))
        if not isinstance(self.slots, int) or self.slots < 1:
            raise SpaceError(f"slots must be a whole number >= 1, got {self.slots!r}")
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise SpaceError(f"widths must be a non-empty list of whole numbers >= 1, got {list(self.widths)}")
        if len(set(self.widths)) != len(self.widths):
            raise SpaceError(f"widths repeat a value: {list(self.widths)}")
        if not self.ops:
            raise SpaceError("ops must list at least one candidate")
        if len(set(self.ops)) != len(self.ops):
            raise SpaceError(f"ops repeat a candidate: {[o.label() for o in self.ops]}")
        if self.stride not in (1, 2):
            raise SpaceError(f"stride must be 1 or 2, got {self.stride!r}")
        if self.fixed_first and not self.first_ops():
            raise SpaceError("fixed_first needs at least one op that is not identity")

    def first_ops(self) -> tuple[Op, ...]:
        """The candidates of the first slot."""
        return tuple(o for o in self.ops if not o.is_identity) if self.fixed_first else self.ops

    def slot_ops(self, j: int) -> tuple[Op, ...]:
        """The candidates of slot ``j``."""
        return self.first_ops() if j == 0 else self.ops

    def size(self) -> int:
        """Distinct architectures of this stage (width x ops; identity slots placed differently count apart, as the
        op sequences differ)."""
        n = len(self.widths)
        for j in range(self.slots):
            n *= len(self.slot_ops(j))
        return n

    def to_dict(self) -> dict[str, Any]:
        return {"slots": self.slots, "widths": list(self.widths), "ops": [o.label() for o in self.ops],
                "stride": self.stride, "fixed_first": self.fixed_first}

    @classmethod
    def from_dict(cls, d: Any, where: str = "stage") -> StageSpace:
        _check_mapping(cls, d, where)
        d = dict(d)
        ops = d.pop("ops", None)
        if not isinstance(ops, (list, tuple)):
            raise SpaceError(f"{where}.ops: a list of op labels ('quadra_k3_e2', 'identity') or objects is required")
        parsed = tuple(Op.from_dict(o, f"{where}.ops[{i}]") for i, o in enumerate(ops))
        if "widths" in d and not isinstance(d["widths"], (list, tuple)):
            raise SpaceError(f"{where}.widths: a list of channel counts is required, got {d['widths']!r}")
        try:
            return cls(ops=parsed, **d)
        except (SpaceError, TypeError) as e:
            raise SpaceError(f"{where}: {e}") from None


@dataclass(frozen=True)
class Arch:
    """A point of a search space: indices into its choices.

    Attributes:
        widths: per stage, the index of its width.
        ops: per stage, per slot, the index of its op among that slot's candidates (:meth:`StageSpace.slot_ops`).
        resolution: the index of the input size.
    """

    widths: tuple[int, ...]
    ops: tuple[tuple[int, ...], ...]
    resolution: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "ops", tuple(tuple(int(o) for o in s) for s in self.ops))

    def key(self) -> str:
        """A short text that is equal for equal points (for caches and Optuna)."""
        return f"r{self.resolution}|" + "|".join(f"w{w}:" + ",".join(map(str, s)) for w, s in
                                                   zip(self.widths, self.ops, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "ops": [list(s) for s in self.ops], "resolution": self.resolution}

    @classmethod
    def from_dict(cls, d: Any) -> Arch:
        _check_mapping(cls, d, "arch")
        for key in ("widths", "ops"):
            if key not in d:
                raise SpaceError(f"arch.{key}: required")
        return cls(tuple(d["widths"]), tuple(tuple(s) for s in d["ops"]), int(d.get("resolution", 0)))


@dataclass(frozen=True)
class SearchSpace:
    """A search space over one of the zoo's skeletons (see the module docstring).

    Attributes:
        name: a label.
        family: ``metaformer`` (patchify stem, LayerNorm downsamplers; quadra/conv/convnext/hor/skip ops) or
            ``mobilenetv2`` (conv-BN-ReLU6 stem, MBConv ops).
        stages: the stages, in order.
        input_sizes: the input sides to choose from (one: resolution is not searched).
        num_classes, in_chans: the classifier's outputs and the image channels.
        stem_kernel, stem_stride, stem_channels: the stem conv (0 channels: the family's default; metaformer: the
            first stage's width).
        head_channels: the last 1x1 conv before pooling (mobilenetv2; 0: 1280).
        layer_scale, memory_efficient: the metaformer blocks' layer-scale init and quadratic recompute.
    """

    name: str
    family: str
    stages: tuple[StageSpace, ...]
    input_sizes: tuple[int, ...] = (28,)
    num_classes: int = 10
    in_chans: int = 1
    stem_kernel: int = 2
    stem_stride: int = 2
    stem_channels: int = 0
    head_channels: int = 0
    layer_scale: float = 1.0
    memory_efficient: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "input_sizes", tuple(self.input_sizes))
        if self.family not in SPACE_FAMILIES:
            raise SpaceError(f"family {self.family!r} is not one of {', '.join(SPACE_FAMILIES)}")
        if not self.stages:
            raise SpaceError("stages: a space needs at least one stage")
        if not self.input_sizes or any(not isinstance(s, int) or s < 1 for s in self.input_sizes):
            raise SpaceError(f"input_sizes must be a non-empty list of whole numbers >= 1, got "
                             f"{list(self.input_sizes)}")
        for key in ("num_classes", "in_chans", "stem_kernel", "stem_stride", "stem_channels", "head_channels"):
            if isinstance(getattr(self, key), bool) or not isinstance(getattr(self, key), int):
                raise SpaceError(f"{key} must be a whole number, got {getattr(self, key)!r}")
        if isinstance(self.layer_scale, bool) or not isinstance(self.layer_scale, (int, float)):
            raise SpaceError(f"layer_scale must be a number, got {self.layer_scale!r} (YAML reads 1e-6 as text; write "
                             "1.0e-6)")
        allowed = SPACE_FAMILIES[self.family]
        for i, st in enumerate(self.stages):
            for k, o in enumerate(st.ops):
                if o.kind not in allowed:
                    raise SpaceError(f"stages[{i}].ops[{k}]: {o.label()!r} does not fit the {self.family} family; it "
                                     f"takes {', '.join(allowed)}")
        # every choice must give a valid network: expand the extremes once, naming the field when one fails
        for r in range(len(self.input_sizes)):
            for pick in (0, -1):
                arch = Arch(tuple(pick % len(s.widths) for s in self.stages),
                            tuple(tuple(pick % len(s.slot_ops(j)) for j in range(s.slots)) for s in self.stages), r)
                try:
                    self.expand(arch)
                except ValueError as e:
                    raise SpaceError(f"input_sizes[{r}] = {self.input_sizes[r]}: the space builds no valid network "
                                     f"({e})") from None

    # --- size and sampling -----------------------------------------------------------------------------------------

    def size(self) -> int:
        """How many architectures the space holds."""
        return math.prod(s.size() for s in self.stages) * len(self.input_sizes)

    def genes(self) -> list[tuple[str, tuple[str, ...]]]:
        """The space as named categorical choices, in a fixed order: ``resolution`` (when searched), then per stage
        ``sI.width`` and ``sI.bJ``; each with the labels of its options. :meth:`decode` reads values back."""
        out: list[tuple[str, tuple[str, ...]]] = []
        if len(self.input_sizes) > 1:
            out.append(("resolution", tuple(str(s) for s in self.input_sizes)))
        for i, st in enumerate(self.stages):
            if len(st.widths) > 1:
                out.append((f"s{i}.width", tuple(str(w) for w in st.widths)))
            for j in range(st.slots):
                opts = st.slot_ops(j)
                if len(opts) > 1:
                    out.append((f"s{i}.b{j}", tuple(o.label() for o in opts)))
        return out

    def decode(self, values: dict[str, int]) -> Arch:
        """The :class:`Arch` of gene values (option indices by gene name; genes with one option may be absent)."""
        def get(name: str, n: int) -> int:
            v = int(values.get(name, 0))
            if not 0 <= v < n:
                raise SpaceError(f"{name}: option {v} out of range (0..{n - 1})")
            return v

        return Arch(tuple(get(f"s{i}.width", len(st.widths)) for i, st in enumerate(self.stages)),
                    tuple(tuple(get(f"s{i}.b{j}", len(st.slot_ops(j))) for j in range(st.slots))
                          for i, st in enumerate(self.stages)),
                    get("resolution", len(self.input_sizes)))

    def arch_from_dict(self, d: Any) -> Arch:
        """A point of this space from its :meth:`Arch.to_dict` (what a study stores)."""
        return Arch.from_dict(d)

    def encode(self, arch: Arch) -> dict[str, int]:
        """Inverse of :meth:`decode` (every gene with more than one option)."""
        self.check(arch)
        vals = {"resolution": arch.resolution, **{f"s{i}.width": w for i, w in enumerate(arch.widths)}}
        for i, s in enumerate(arch.ops):
            vals.update({f"s{i}.b{j}": o for j, o in enumerate(s)})
        names = {g for g, _ in self.genes()}
        return {k: v for k, v in vals.items() if k in names}

    def sample(self, rng: random.Random) -> Arch:
        """A uniformly drawn architecture (every choice independent and uniform)."""
        return Arch(tuple(rng.randrange(len(st.widths)) for st in self.stages),
                    tuple(tuple(rng.randrange(len(st.slot_ops(j))) for j in range(st.slots)) for st in self.stages),
                    rng.randrange(len(self.input_sizes)))

    def largest(self) -> Arch:
        """The widest choices, every slot holding its last non-identity candidate (typically the largest)."""
        def big(opts: tuple[Op, ...]) -> int:
            return max((k for k, o in enumerate(opts) if not o.is_identity), default=0)

        return Arch(tuple(len(st.widths) - 1 for st in self.stages),
                    tuple(tuple(big(st.slot_ops(j)) for j in range(st.slots)) for st in self.stages),
                    len(self.input_sizes) - 1)

    def check(self, arch: Arch) -> None:
        """Refuse a point that does not belong to this space, naming the stage and slot."""
        if len(arch.widths) != len(self.stages) or len(arch.ops) != len(self.stages):
            raise SpaceError(f"the arch has {len(arch.widths)} widths and {len(arch.ops)} op lists; space "
                             f"{self.name!r} has {len(self.stages)} stages")
        if not 0 <= arch.resolution < len(self.input_sizes):
            raise SpaceError(f"resolution index {arch.resolution} out of range (0..{len(self.input_sizes) - 1})")
        for i, (st, w, ops) in enumerate(zip(self.stages, arch.widths, arch.ops, strict=True)):
            if not 0 <= w < len(st.widths):
                raise SpaceError(f"stage {i}: width index {w} out of range (0..{len(st.widths) - 1})")
            if len(ops) != st.slots:
                raise SpaceError(f"stage {i}: {len(ops)} slot choices for {st.slots} slots")
            for j, o in enumerate(ops):
                if not 0 <= o < len(st.slot_ops(j)):
                    raise SpaceError(f"stage {i} slot {j}: op index {o} out of range (0..{len(st.slot_ops(j)) - 1})")

    # --- what a point means ----------------------------------------------------------------------------------------

    def ops_of(self, arch: Arch) -> list[list[Op]]:
        """Per stage, per slot, the :class:`Op` the point chose."""
        self.check(arch)
        return [[st.slot_ops(j)[o] for j, o in enumerate(ops)] for st, ops in zip(self.stages, arch.ops, strict=True)]

    def widths_of(self, arch: Arch) -> list[int]:
        self.check(arch)
        return [st.widths[w] for st, w in zip(self.stages, arch.widths, strict=True)]

    def input_size(self, arch: Arch) -> int:
        self.check(arch)
        return self.input_sizes[arch.resolution]

    def describe(self, arch: Arch) -> dict[str, Any]:
        """The point in words: input size, per stage its width and the labels of its slots."""
        return {"input_size": self.input_size(arch),
                "stages": [{"width": w, "blocks": [o.label() for o in ops]}
                           for w, ops in zip(self.widths_of(arch), self.ops_of(arch), strict=True)]}

    def expand(self, arch: Arch, name: str = "") -> ModelConfig:
        """The zoo's config of a point. Identity slots are left out; runs of equal blocks in a stage become one
        zoo stage (the first carries the stride), so the config is as short as the network allows."""
        stages: list[StageConfig] = []
        for st, width, ops in zip(self.stages, self.widths_of(arch), self.ops_of(arch), strict=True):
            blocks = [o for o in ops if not o.is_identity]
            runs: list[list[Op]] = []
            for o in blocks:
                if runs and runs[-1][0] == o:
                    runs[-1].append(o)
                else:
                    runs.append([o])
            if not runs:  # an empty stage keeps its downsampler (metaformer) so the widths still follow
                filler = next(o for o in st.ops if not o.is_identity) if any(
                    not o.is_identity for o in st.ops) else Op("skip")
                stages.append(StageConfig(0, width, filler.block(self.layer_scale, self.memory_efficient), st.stride))
                continue
            for k, run in enumerate(runs):
                stages.append(StageConfig(len(run), width, run[0].block(self.layer_scale, self.memory_efficient),
                                          st.stride if k == 0 else 1))
        return ModelConfig(self.family, tuple(stages), self.num_classes, self.in_chans, stem_kernel=self.stem_kernel,
                           stem_stride=self.stem_stride, stem_channels=self.stem_channels,
                           head_channels=self.head_channels, input_size=self.input_size(arch),
                           name=name or f"{self.name}_{_short(arch)}")

    # --- files -----------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["stages"] = [s.to_dict() for s in self.stages]
        d["input_sizes"] = list(self.input_sizes)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "space") -> SearchSpace:
        _check_mapping(cls, d, where)
        d = dict(d)
        stages = d.pop("stages", None)
        if not isinstance(stages, (list, tuple)) or not stages:
            raise SpaceError(f"{where}.stages: a non-empty list of stages is required")
        parsed = tuple(StageSpace.from_dict(s, f"{where}.stages[{i}]") for i, s in enumerate(stages))
        for key in ("name", "family"):
            if key not in d:
                raise SpaceError(f"{where}.{key}: required")
        if "input_sizes" in d and not isinstance(d["input_sizes"], (list, tuple)):
            raise SpaceError(f"{where}.input_sizes: a list of image sides is required, got {d['input_sizes']!r}")
        try:
            return cls(stages=parsed, **d)
        except TypeError as e:
            raise SpaceError(f"{where}: {e}") from None

    def with_data(self, num_classes: int, in_chans: int, input_size: int | None = None) -> SearchSpace:
        """The same space for another data set's classes, channels (and, when given, its only input size)."""
        d = self.to_dict()
        d.update(num_classes=num_classes, in_chans=in_chans)
        if input_size is not None:
            d["input_sizes"] = [input_size]
        return SearchSpace.from_dict(d)


def _short(arch: Arch) -> str:
    """A compact stable tag of a point (for names)."""
    import hashlib

    return hashlib.sha1(arch.key().encode()).hexdigest()[:8]


def _check_mapping(cls: type, d: Any, where: str) -> None:
    if not isinstance(d, dict):
        raise SpaceError(f"{where}: expected a mapping (JSON object), got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        hints = [h for k in unknown for h in difflib.get_close_matches(k, names, n=1)]
        raise SpaceError(f"{where}: unknown field(s) {unknown}" + (f" (did you mean {hints}?)" if hints else "")
                         + f"; fields: {sorted(names)}")


# --- built-in spaces --------------------------------------------------------------------------------------------


def _quadra_ops() -> tuple[Op, ...]:
    return tuple(Op("quadra", k, e) for k in (3, 5, 7) for e in (2.0, 4.0)) + (Op("identity"),)


def _mbconv_ops() -> tuple[Op, ...]:
    return tuple(Op("mbv2", k, e) for k in (3, 5, 7) for e in (3, 6)) + (Op("identity"),)


def quadranet_space(input_size: int = 28, *, in_chans: int = 1, num_classes: int = 10) -> SearchSpace:
    """The QuadraNet paper's space. At 28/32 px: the zoo's small skeleton (stem 2x2 stride 2), slots [2, 2, 4, 2],
    widths around quadranet_s28's C=24 ({16, 24, 32} x [1, 2, 4, 8]). At 224: stem 4x4 stride 4, slots
    [2, 3, 9, 2] (QuadraNet25's depth halved), widths {32, 48, 64} x [1, 2, 4, 8]."""
    small = input_size <= 64
    slots = (2, 2, 4, 2) if small else (2, 3, 9, 2)
    base = (16, 24, 32) if small else (32, 48, 64)
    stages = tuple(StageSpace(n, tuple(b * 2**i for b in base), _quadra_ops(), stride=1 if i == 0 else 2)
                   for i, n in enumerate(slots))
    stem = 2 if small else 4
    return SearchSpace("quadranet_s28" if input_size == 28 else f"quadranet_{input_size}", "metaformer", stages,
                       (input_size,), num_classes, in_chans, stem_kernel=stem, stem_stride=stem, layer_scale=1.0
                       if small else 1e-6)


def mbconv_space(input_size: int = 28, *, in_chans: int = 1, num_classes: int = 10) -> SearchSpace:
    """The ProxylessNAS space on MobileNetV2's skeleton. A fixed MBConv (k3, t1) first, then five searched stages
    of [2, 3, 3, 3, 1] slots (the paper's [4, 4, 4, 4, 4, 1] scaled to the small input). At 28/32 px: stride-1
    stem of 16, strides 2/2/2/1/1 (maps 28/14/7/4/4/4), widths {16,24}, {24,32,40}, {48,64}, {64,96}, {128,160},
    head 512. At 224: stride-2 stem of 32, strides 2/2/2/1/2 from 112, widths {24,32}, {32,40,48}, {64,80}, {96,
    112}, {160,192}, head 1280."""
    small = input_size <= 64
    fixed = StageSpace(1, (16,), (Op("mbv2", 3, 1),), stride=1, fixed_first=True)
    widths = (((16, 24), (24, 32, 40), (48, 64), (64, 96), (128, 160)) if small else
              ((24, 32), (32, 40, 48), (64, 80), (96, 112), (160, 192)))
    strides = (2, 2, 2, 1, 1) if small else (2, 2, 2, 1, 2)
    slots = (2, 3, 3, 3, 1)
    stages = (fixed,) + tuple(StageSpace(n, w, _mbconv_ops(), stride=s, fixed_first=True)
                              for n, w, s in zip(slots, widths, strides, strict=True))
    return SearchSpace("mbconv_s28" if input_size == 28 else f"mbconv_{input_size}", "mobilenetv2", stages,
                       (input_size,), num_classes, in_chans, stem_kernel=3, stem_stride=1 if small else 2,
                       stem_channels=16 if small else 32, head_channels=512 if small else 1280)


SPACES = {
    "quadranet_s28": lambda: quadranet_space(28),
    "mbconv_s28": lambda: mbconv_space(28),
    "quadranet": lambda: quadranet_space(224, in_chans=3, num_classes=1000),
    "mbconv": lambda: mbconv_space(224, in_chans=3, num_classes=1000),
}


def load_space(spec: str | Path | SearchSpace) -> SearchSpace:
    """A built-in space by name (:data:`SPACES`), or a JSON / YAML file of :meth:`SearchSpace.to_dict`'s shape.

    Raises:
        SpaceError: an unknown name, an unreadable file, or a field that does not fit, naming it.
    """
    if isinstance(spec, SearchSpace):
        return spec
    text = str(spec)
    if text in SPACES:
        return SPACES[text]()
    path = Path(text)
    if not path.is_file():
        hint = difflib.get_close_matches(text, SPACES, n=1)
        raise SpaceError(f"search space {text!r}: no such built-in space or file; built-in: {', '.join(SPACES)}"
                         + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    raw = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw)
        else:
            data = json.loads(raw)
    except Exception as e:  # yaml and json raise their own error types
        raise SpaceError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                         f"({str(e).splitlines()[0]})") from None
    try:
        return SearchSpace.from_dict(data, where=path.name)
    except SpaceError as e:
        msg = str(e)
        raise SpaceError(msg if msg.startswith(path.name) else f"{path.name}: {msg}") from None


__all__ = ["Arch", "Op", "SPACES", "SearchSpace", "SpaceError", "StageSpace", "load_space", "mbconv_space",
           "parse_op", "quadranet_space"]
