"""Accelerator search spaces as data: the systolic arrays a co-design search may build.

A :class:`HwSpace` lists the choices of each dimension; a :class:`HwPoint` is one choice per dimension, and
:meth:`HwSpace.build` turns it into the :class:`~chipfit.hw.array.Arch` the simulator runs, taking what the space
does not vary (clock, vector lanes per column, energy table, links) from a base chip (``edge-npu`` by default).

Dimensions: ``rows`` and ``cols`` of the PE array, ``dataflow`` (ws / os / is), ``sram_kb`` (the total on-chip SRAM in
KiB) and its ``split`` between input maps, weights and outputs (percentages such as ``50/25/25``), ``word_bits`` of a
MAC operand, ``dram_gbps`` (DRAM bandwidth in GB/s), ``chips`` linked in a layer pipeline (more chips raise
throughput, not latency: the built-in spaces keep one), and ``sparsity`` support (``dense``, ``nm``,
``unstructured``). ``node_nm`` is the process the area model scales to
(:mod:`chipfit.hw.area`).

A space file (JSON or YAML) gives any of the dimensions as lists and the rest default to :data:`DEFAULTS`::

    name: my-npu-space
    base: edge-npu
    rows: [16, 32, 64]
    cols: [16, 32, 64]
    sram_kb: [256, 512, 1024]
    dram_gbps: [8]

A bad file raises :class:`HwSpaceError` naming the file and the field. :func:`chip_space` makes the one-point space
of a chip's own array (network-only search on a fixed chip through the same machinery).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from chipfit.hw.array import DATAFLOWS, SPARSITY_KINDS, Arch


class HwSpaceError(ValueError):
    """A bad accelerator space (or point): the message names the file and the field."""


DIMS = ("rows", "cols", "dataflow", "sram_kb", "split", "word_bits", "dram_gbps", "chips", "sparsity")
SPARSITY_CHOICES = ("dense", *SPARSITY_KINDS)

# the built-in space, from a few-mm2 edge array to a TPU-sized one
DEFAULTS: dict[str, tuple[Any, ...]] = {
    "rows": (8, 16, 32, 64, 128, 256),
    "cols": (8, 16, 32, 64, 128, 256),
    "dataflow": ("ws", "os", "is"),
    "sram_kb": (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768),
    "split": ((50, 25, 25), (25, 50, 25), (34, 33, 33), (25, 25, 50)),
    "word_bits": (8,),
    "dram_gbps": (2, 4, 8, 16, 34, 64),
    "chips": (1,),
    "sparsity": ("dense", "nm"),
}


def _split_label(s: tuple[int, int, int]) -> str:
    return "/".join(map(str, s))


@dataclass(frozen=True)
class HwPoint:
    """One accelerator: a choice per dimension of :data:`DIMS`."""

    rows: int
    cols: int
    dataflow: str
    sram_kb: int
    split: tuple[int, int, int]
    word_bits: int
    dram_gbps: float
    chips: int
    sparsity: str

    def key(self) -> str:
        return (f"{self.rows}x{self.cols}-{self.dataflow}-{self.sram_kb}k-{_split_label(self.split)}-"
                f"w{self.word_bits}-{self.dram_gbps:g}GBs-x{self.chips}-{self.sparsity}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HwPoint:
        if not isinstance(d, Mapping) or set(d) != set(DIMS):
            raise HwSpaceError(f"an accelerator point needs exactly the fields {', '.join(DIMS)}")
        return cls(**{k: (tuple(v) if k == "split" else v) for k, v in d.items()})


@dataclass(frozen=True)
class HwSpace:
    """The choices of each accelerator dimension, the base chip and the process node."""

    name: str = "npu"
    base: str = "edge-npu"
    node_nm: float = 45.0
    rows: tuple[int, ...] = DEFAULTS["rows"]
    cols: tuple[int, ...] = DEFAULTS["cols"]
    dataflow: tuple[str, ...] = DEFAULTS["dataflow"]
    sram_kb: tuple[int, ...] = DEFAULTS["sram_kb"]
    split: tuple[tuple[int, int, int], ...] = DEFAULTS["split"]
    word_bits: tuple[int, ...] = DEFAULTS["word_bits"]
    dram_gbps: tuple[float, ...] = DEFAULTS["dram_gbps"]
    chips: tuple[int, ...] = DEFAULTS["chips"]
    sparsity: tuple[str, ...] = DEFAULTS["sparsity"]
    where: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        w = f"{self.where}: " if self.where else ""
        if not isinstance(self.name, str) or not self.name:
            raise HwSpaceError(f"{w}name: a non-empty string")
        if not isinstance(self.node_nm, (int, float)) or isinstance(self.node_nm, bool) or not self.node_nm > 0:
            raise HwSpaceError(f"{w}node_nm: a process node in nm (e.g. 45), not {self.node_nm!r}")
        for dim in DIMS:
            opts = getattr(self, dim)
            if not isinstance(opts, tuple) or not opts:
                raise HwSpaceError(f"{w}{dim}: a non-empty list of choices")
            if len(set(opts)) != len(opts):
                raise HwSpaceError(f"{w}{dim}: a choice is listed twice in {list(opts)}")
            for i, v in enumerate(opts):
                bad = _check(dim, v)
                if bad:
                    raise HwSpaceError(f"{w}{dim}[{i}]: {bad}, not {v!r}")

    def genes(self) -> list[tuple[str, tuple[str, ...]]]:
        """(name, option labels) of each dimension with more than one choice."""
        return [(d, tuple(_label(d, v) for v in getattr(self, d))) for d in DIMS if len(getattr(self, d)) > 1]

    def size(self) -> int:
        return math.prod(len(getattr(self, d)) for d in DIMS)

    def decode(self, values: Mapping[str, int]) -> HwPoint:
        """The point of option indices by dimension (dimensions with one choice may be absent)."""
        return HwPoint(**{d: getattr(self, d)[values.get(d, 0)] for d in DIMS})

    def encode(self, point: HwPoint) -> dict[str, int]:
        self.check(point)
        return {d: getattr(self, d).index(getattr(point, d)) for d in DIMS}

    def check(self, point: HwPoint) -> None:
        for d in DIMS:
            if getattr(point, d) not in getattr(self, d):
                raise HwSpaceError(f"{d} = {getattr(point, d)!r} is not a choice of space {self.name!r} "
                                   f"({', '.join(_label(d, v) for v in getattr(self, d))})")

    def point(self, index: int) -> HwPoint:
        """The ``index``-th point in mixed-radix order (0 <= index < size())."""
        if not 0 <= index < self.size():
            raise HwSpaceError(f"point index {index} outside 0..{self.size() - 1}")
        values = {}
        for d in reversed(DIMS):
            n = len(getattr(self, d))
            index, values[d] = divmod(index, n)
        return self.decode(values)

    def points(self) -> Iterator[HwPoint]:
        return (self.point(i) for i in range(self.size()))

    def sample(self, rng: random.Random) -> HwPoint:
        return self.decode({d: rng.randrange(len(getattr(self, d))) for d in DIMS})

    def neighbours(self, point: HwPoint) -> list[HwPoint]:
        """Points one step away in one dimension (the next smaller or larger choice)."""
        idx = self.encode(point)
        out = []
        for d in DIMS:
            for step in (-1, 1):
                j = idx[d] + step
                if 0 <= j < len(getattr(self, d)):
                    out.append(self.decode({**idx, d: j}))
        return out

    def build(self, point: HwPoint, base: Arch | None = None) -> Arch:
        """The array of ``point``: the base chip's, with the point's dimensions."""
        from chipfit.hw.sim.arch import load_arch

        arch = base if base is not None else load_arch(self.base)
        total = point.sram_kb * 1024
        ib, fb = total * point.split[0] // 100, total * point.split[1] // 100
        src = f"searched: accelerator space {self.name!r}, point {point.key()}"
        sources = dict(arch.sources)
        for k in ("rows", "cols", "dataflow", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "word_bits",
                  "dram_bandwidth_bytes_per_s", "sparsity", "vector_lanes"):
            sources[k] = src
        return replace(arch, name=f"{self.name}:{point.key()}", description=f"{point.key()} (from {arch.name})",
                       rows=point.rows, cols=point.cols, dataflow=point.dataflow, ifmap_sram_bytes=ib,
                       filter_sram_bytes=fb, ofmap_sram_bytes=total - ib - fb, word_bits=point.word_bits,
                       dram_bandwidth_bytes_per_s=point.dram_gbps * 1e9, vector_lanes=point.cols,
                       sparsity=() if point.sparsity == "dense" else (point.sparsity,), sources=sources, path=None)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "base": self.base, "node_nm": self.node_nm}
        for dim in DIMS:
            d[dim] = [_label(dim, v) if dim == "split" else v for v in getattr(self, dim)]
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "accelerator space") -> HwSpace:
        if not isinstance(d, Mapping):
            raise HwSpaceError(f"{where}: a mapping of name, base, node_nm and {', '.join(DIMS)}")
        known = {"name", "base", "node_nm", "description", *DIMS}
        extra = sorted(set(map(str, d)) - known)
        if extra:
            raise HwSpaceError(f"{where}: unknown field {extra[0]!r} (fields: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {"where": where}
        for k in ("name", "base", "node_nm"):
            if k in d:
                kw[k] = d[k]
        for dim in DIMS:
            if dim not in d:
                continue
            raw = d[dim]
            if not isinstance(raw, list):
                raw = [raw]
            if dim == "split":
                raw = [_parse_split(v, f"{where}: split[{i}]") for i, v in enumerate(raw)]
            kw[dim] = tuple(raw)
        return cls(**kw)


def _label(dim: str, v: Any) -> str:
    return _split_label(v) if dim == "split" else f"{v:g}" if isinstance(v, float) else str(v)


def _parse_split(v: Any, where: str) -> tuple[int, int, int]:
    parts = v.split("/") if isinstance(v, str) else v
    try:
        out = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise HwSpaceError(f"{where}: input/weight/output SRAM percentages such as \"50/25/25\", not {v!r}") from None
    if len(out) != 3:
        raise HwSpaceError(f"{where}: three percentages (inputs/weights/outputs), not {v!r}")
    return out  # type: ignore[return-value]


def _check(dim: str, v: Any) -> str | None:
    """What is wrong with one choice, or None."""
    def whole(lo: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= lo

    if dim in ("rows", "cols", "chips"):
        return None if whole(1) else "a whole number >= 1"
    if dim == "sram_kb":
        return None if whole(1) else "KiB of SRAM, a whole number >= 1"
    if dim == "word_bits":
        return None if isinstance(v, int) and v in (4, 8, 16, 32) else "4, 8, 16 or 32"
    if dim == "dataflow":
        return None if v in DATAFLOWS else "ws, os or is"
    if dim == "sparsity":
        return None if v in SPARSITY_CHOICES else f"one of {', '.join(SPARSITY_CHOICES)}"
    if dim == "dram_gbps":
        return None if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else "GB/s > 0"
    if dim == "split":
        ok = isinstance(v, tuple) and len(v) == 3 and all(isinstance(p, int) and p > 0 for p in v) and sum(v) == 100
        return None if ok else "three positive percentages adding up to 100"
    return None


BUILTIN = {"npu": HwSpace(), "edge": HwSpace(
    name="edge", rows=(8, 16, 32, 64), cols=(8, 16, 32, 64), sram_kb=(64, 128, 256, 512, 1024, 2048),
    dram_gbps=(4, 8, 16))}


def chip_space(chip: str | Arch, node_nm: float = 45.0) -> HwSpace:
    """The one-point space of a chip's own array (its SRAM split rounded to whole percentages)."""
    from chipfit.hw.sim.arch import load_arch

    arch = load_arch(chip)
    total = arch.ifmap_sram_bytes + arch.filter_sram_bytes + arch.ofmap_sram_bytes
    if total % 1024:
        raise HwSpaceError(f"{arch.name}: its SRAM ({total} B) is not a whole number of KiB")
    i, f = round(100 * arch.ifmap_sram_bytes / total), round(100 * arch.filter_sram_bytes / total)
    sp = "dense" if not arch.sparsity else arch.sparsity[0]
    if arch.dram_bandwidth_bytes_per_s is None:
        raise HwSpaceError(f"{arch.name}: unlimited DRAM bandwidth cannot be a space's choice")
    return HwSpace(name=arch.name, base=arch.name, node_nm=node_nm, rows=(arch.rows,), cols=(arch.cols,),
                   dataflow=(arch.dataflow,), sram_kb=(total // 1024,), split=((i, f, 100 - i - f),),
                   word_bits=(arch.word_bits,), dram_gbps=(arch.dram_bandwidth_bytes_per_s / 1e9,), chips=(1,),
                   sparsity=(sp,))


def load_hw_space(spec: str | Path | HwSpace) -> HwSpace:
    """A built-in accelerator space (:data:`BUILTIN`), ``chip:NAME`` (that chip's one-point space), or a JSON / YAML
    file."""
    if isinstance(spec, HwSpace):
        return spec
    text = str(spec)
    if text in BUILTIN:
        return BUILTIN[text]
    if text.startswith("chip:"):
        return chip_space(text[5:])
    path = Path(text).expanduser()
    if not path.is_file():
        raise HwSpaceError(f"accelerator space {text!r}: not a built-in ({', '.join(BUILTIN)}), not chip:NAME and no "
                           "such file")
    if path.suffix.lower() in (".yaml", ".yml"):
        from chipfit.hw.cited import read_yaml

        data = read_yaml(path, "accelerator space")
    else:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise HwSpaceError(f"{path}: not valid JSON ({e})") from None
    return HwSpace.from_dict(data, str(path))


__all__ = ["BUILTIN", "DEFAULTS", "DIMS", "HwPoint", "HwSpace", "HwSpaceError", "chip_space", "load_hw_space"]
