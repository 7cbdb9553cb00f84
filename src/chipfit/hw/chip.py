"""Chip profiles: YAML files, one per chip, every number with its source, validated into a :class:`Chip`.

A number is written ``{value: 92e12, source: "Jouppi et al., ISCA 2017: ..."}``; an assumption says so in its
source (``source: "assumption: ..."``). A bad file raises ``ValueError`` naming the file, the field path
(``peak_ops_per_s.fp16.value``) and the expected type; no YAML traceback reaches the user.

Conventions: ``peak_ops_per_s`` counts arithmetic operations, one multiply-accumulate (MAC) being 2 operations;
bytes are bytes (not bits); energies are picojoules.

Where profiles live: the built-in ones ship in ``chipfit/hw/chips/``; a user's go in :func:`user_chip_dir`
(``$CHIPFIT_HOME/hw`` or ``~/.config/chipfit/hw``) and override a built-in of the same name.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DTYPES = ("fp32", "fp16", "bf16", "int16", "int8", "int4")
# Energy tables may also price int32 (the accumulator width of integer MACs in Horowitz's table).
ENERGY_DTYPES = (*DTYPES, "int32")
KINDS = ("asic", "gpu", "cpu", "vpu", "npu", "dsp", "fpga")
UNSPECIFIED_KIND = "unspecified"


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation and per byte, in picojoules.

    Attributes:
        mac_pj: one multiply-accumulate, by dtype.
        add_pj: one non-MAC arithmetic operation (element-wise, activation, normalisation), by dtype.
        sram_pj_per_byte: one byte read or written in on-chip memory.
        dram_pj_per_byte: one byte read or written in DRAM.
    """

    mac_pj: dict[str, float]
    add_pj: dict[str, float]
    sram_pj_per_byte: float
    dram_pj_per_byte: float


# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm at 0.9 V. A MAC is one
# multiply plus one add. The table has 8- and 32-bit integers only; the int16 and int4 entries are interpolations
# (multiplier energy grows with the square of the width: 0.2 pJ x (16/8)^2 = 0.8 pJ, and 3.1 pJ / 0.2 pJ = 15.5 is
# close to (32/8)^2 = 16; adder energy grows linearly: 0.03 pJ at 8 bits, 0.1 pJ at 32 bits), and bf16 takes the
# fp16 figures (an upper bound: its 8-bit mantissa multiplier is smaller than fp16's 11-bit one).
HOROWITZ_45NM = EnergyTable(
    mac_pj={"int4": 0.05 + 0.02, "int8": 0.2 + 0.03, "int16": 0.8 + 0.05, "int32": 3.1 + 0.1,
            "fp16": 1.1 + 0.4, "bf16": 1.1 + 0.4, "fp32": 3.7 + 0.9},
    add_pj={"int4": 0.02, "int8": 0.03, "int16": 0.05, "int32": 0.1, "fp16": 0.4, "bf16": 0.4, "fp32": 0.9},
    sram_pj_per_byte=100 / 8,  # 1 MB SRAM: 100 pJ per 64-bit access (a 32 KB SRAM: 20 pJ / 8 B = 2.5 pJ/byte)
    dram_pj_per_byte=640 / 4,  # 640 pJ per 32-bit DRAM word, the figure Han et al. use (1.3-2.6 nJ per 64 bits)
)
_H = "Horowitz ISSCC 2014, 45 nm (default)"
HOROWITZ_SOURCES: dict[str, str] = {
    "mac_pj.int8": f"{_H}: 8-bit multiply 0.2 + add 0.03 pJ",
    "mac_pj.int32": f"{_H}: 32-bit multiply 3.1 + add 0.1 pJ",
    "mac_pj.fp16": f"{_H}: fp16 multiply 1.1 + add 0.4 pJ",
    "mac_pj.fp32": f"{_H}: fp32 multiply 3.7 + add 0.9 pJ",
    "mac_pj.bf16": f"assumption: fp16 figures of {_H} (1.1 + 0.4 pJ), an upper bound for bf16",
    "mac_pj.int16": f"assumption: interpolated from {_H}: multiply 0.2 x (16/8)^2 = 0.8 pJ + add 0.05 pJ",
    "mac_pj.int4": f"assumption: interpolated from {_H}: multiply 0.2 x (4/8)^2 = 0.05 pJ + add 0.02 pJ",
    "add_pj.int8": f"{_H}: 8-bit add 0.03 pJ",
    "add_pj.int32": f"{_H}: 32-bit add 0.1 pJ",
    "add_pj.fp16": f"{_H}: fp16 add 0.4 pJ",
    "add_pj.fp32": f"{_H}: fp32 add 0.9 pJ",
    "add_pj.bf16": f"assumption: fp16 add of {_H}, 0.4 pJ",
    "add_pj.int16": f"assumption: interpolated linearly in width from {_H} (0.03 pJ at 8 bits, 0.1 at 32): 0.05 pJ",
    "add_pj.int4": f"assumption: interpolated linearly in width from {_H}: 0.02 pJ",
    "sram_pj_per_byte": f"{_H}: 1 MB SRAM, 100 pJ per 64-bit access = 12.5 pJ/byte",
    "dram_pj_per_byte": f"{_H}: 640 pJ per 32-bit DRAM access (as in Han et al.) = 160 pJ/byte",
}
assert set(HOROWITZ_SOURCES) == {f"mac_pj.{d}" for d in HOROWITZ_45NM.mac_pj} | {
    f"add_pj.{d}" for d in HOROWITZ_45NM.add_pj} | {"sram_pj_per_byte", "dram_pj_per_byte"}

_CITED = "{value: <number>, source: <text>}"
# top-level field -> (required, expected form); the order is the order fields are checked and shown
_FIELDS: dict[str, tuple[bool, str]] = {
    "name": (True, "a non-empty string"),
    "description": (False, "a string"),
    "kind": (False, f"one of {', '.join(KINDS)}"),
    "peak_ops_per_s": (True, f"a mapping from dtype ({', '.join(DTYPES)}) to {{value: <ops/s>, source: <text>}}, "
                             "with at least one dtype"),
    "dram_bandwidth_bytes_per_s": (True, "{value: <bytes/s>, source: <text>}, or null for a chip with no off-chip "
                                         "DRAM"),
    "onchip_bytes": (True, "{value: <bytes>, source: <text>}"),
    "sram_bandwidth_bytes_per_s": (False, "{value: <bytes/s>, source: <text>} or null"),
    "efficiency": (True, "{value: <fraction in (0, 1]>, source: <text>}"),
    "op_overhead_s": (False, "{value: <seconds>, source: <text>}"),
    "concurrent_ops": (False, "{value: true or false, source: <text>}"),
    "clock_hz": (False, "{value: <Hz>, source: <text>} or null"),
    "power_w": (False, "{value: <W>, source: <text>} or null"),
    "energy": (False, "a mapping with any of mac_pj, add_pj, sram_pj_per_byte, dram_pj_per_byte"),
    "notes": (False, "a string"),
}
_ENERGY_FIELDS = ("mac_pj", "add_pj", "sram_pj_per_byte", "dram_pj_per_byte")
_DEFAULT = "default: not given in the profile"


@dataclass(frozen=True)
class Chip:
    """A chip's capabilities as the roofline model uses them.

    Attributes:
        name: profile name (``jetson-tx2``).
        description: one line.
        kind: asic, gpu, cpu, vpu, npu, dsp or fpga (``unspecified`` when the profile omits it).
        peak_ops_per_s: arithmetic operations per second by dtype (one MAC = 2 operations).
        dram_bandwidth_bytes_per_s: off-chip bandwidth; ``None`` for a chip with no DRAM (the model lives on chip).
        onchip_bytes: on-chip memory (SRAM, eDRAM or last-level cache) available to the network.
        sram_bandwidth_bytes_per_s: on-chip bandwidth where known, else ``None`` (then not a limit).
        efficiency: fraction of peak that dense layers (conv, GEMM) reach.
        op_overhead_s: fixed cost per executed op (kernel launch, instruction issue, framework dispatch).
        concurrent_ops: whether independent ops may overlap (network time = critical path).
        clock_hz: clock, where known.
        power_w: power, where known.
        energy: energy table; entries the profile leaves out are the :data:`HOROWITZ_45NM` defaults.
        sources: field path (``peak_ops_per_s.int8``, ``energy.mac_pj.fp16``) -> citation, for every number,
            defaults included.
        path: the file it was loaded from.
        notes: free text from the profile.
    """

    name: str
    description: str
    kind: str
    peak_ops_per_s: dict[str, float]
    dram_bandwidth_bytes_per_s: float | None
    onchip_bytes: float
    sram_bandwidth_bytes_per_s: float | None
    efficiency: float
    op_overhead_s: float
    concurrent_ops: bool
    clock_hz: float | None
    power_w: float | None
    energy: EnergyTable
    sources: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    notes: str = ""

    def peak(self, dtype: str) -> float:
        """Peak operations per second at ``dtype``; ValueError naming the dtypes this chip supports."""
        if dtype not in self.peak_ops_per_s:
            raise ValueError(f"chip {self.name} has no {dtype} peak; it supports {', '.join(self.peak_ops_per_s)} "
                             f"(choose --dtype accordingly)")
        return self.peak_ops_per_s[dtype]

    def best_dtype(self) -> str:
        """The dtype with the highest peak."""
        return max(self.peak_ops_per_s, key=self.peak_ops_per_s.__getitem__)

    def ridge(self, dtype: str) -> float | None:
        """Operations per DRAM byte where the modelled roofline turns from memory- to compute-bound.

        The compute roof is ``peak x efficiency`` (what the roofline model uses), so this is
        ``peak(dtype) x efficiency / DRAM bandwidth``; ``None`` for a chip with no DRAM.
        """
        bw = self.dram_bandwidth_bytes_per_s
        return self.peak(dtype) * self.efficiency / bw if bw else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, in the YAML profile's shape: every number as ``{value, source}``; plus ``path``.

        :meth:`from_dict` reads it back.
        """

        def cited(path: str, v: Any) -> dict[str, Any] | None:
            return None if v is None else {"value": v, "source": self.sources.get(path, "")}

        out: dict[str, Any] = {"name": self.name, "description": self.description, "kind": self.kind}
        out["peak_ops_per_s"] = {d: cited(f"peak_ops_per_s.{d}", v) for d, v in self.peak_ops_per_s.items()}
        for key in ("dram_bandwidth_bytes_per_s", "onchip_bytes", "sram_bandwidth_bytes_per_s", "efficiency",
                    "op_overhead_s", "concurrent_ops", "clock_hz", "power_w"):
            out[key] = cited(key, getattr(self, key))
        e = self.energy
        out["energy"] = {
            "mac_pj": {d: cited(f"energy.mac_pj.{d}", v) for d, v in e.mac_pj.items()},
            "add_pj": {d: cited(f"energy.add_pj.{d}", v) for d, v in e.add_pj.items()},
            "sram_pj_per_byte": cited("energy.sram_pj_per_byte", e.sram_pj_per_byte),
            "dram_pj_per_byte": cited("energy.dram_pj_per_byte", e.dram_pj_per_byte),
        }
        if self.notes:
            out["notes"] = self.notes
        out["path"] = self.path
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chip:
        """Inverse of :meth:`to_dict` (validated like a YAML profile)."""
        data = dict(data)
        path = data.pop("path", None)
        return parse_chip(data, path or "<dict>", path=path)


# --- validation ---------------------------------------------------------------------------------------------------


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _hint(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Reads one profile, collecting the sources; every error names the file, the field path and the type."""

    def __init__(self, where: str):
        self.where = where
        self.sources: dict[str, str] = {}

    def error(self, path: str, expected: str, got: Any = ...) -> ValueError:
        got_s = "" if got is ... else f", got {type(got).__name__} {_show(got)}"
        return ValueError(f"{self.where}: field '{path}' must be {expected}{got_s}")

    def cited(self, path: str, raw: Any, what: str) -> tuple[Any, str]:
        """The (value, source) of a ``{value, source}`` mapping, checking its shape and its source."""
        if not isinstance(raw, dict):
            if isinstance(raw, (int, float, str, bool)):
                shown = str(raw).lower() if isinstance(raw, bool) else raw
                raise ValueError(
                    f"{self.where}: field '{path}' is a bare value ({raw!r}) without a source; it must be "
                    f"{{value: {what}, source: <text>}}: add where it comes from, e.g. "
                    f"{path.rsplit('.', 1)[-1]}: {{value: {shown}, source: \"assumption: why\"}}")
            raise self.error(path, f"{{value: {what}, source: <text>}}", raw)
        unknown = [str(k) for k in raw if k not in ("value", "source")]
        if unknown:
            raise ValueError(f"{self.where}: field '{path}' has unknown key {unknown[0]!r}"
                             f"{_hint(unknown[0], ('value', 'source'))}; it must be "
                             f"{{value: {what}, source: <text>}}")
        if "value" not in raw:
            raise ValueError(f"{self.where}: field '{path}.value' is missing; it must be {what}")
        src = raw.get("source")
        if not isinstance(src, str) or not src.strip():
            raise self.error(f"{path}.source", "a non-empty string saying where the number comes from "
                             "(or 'assumption: why')", src)
        return raw["value"], src.strip()

    def number(self, path: str, raw: Any, *, nullable: bool = False, positive: bool = True,
               at_most: float | None = None) -> float | None:
        """A cited number; ``None`` when ``nullable`` and the field (or its value) is null."""
        if raw is None and nullable:
            return None
        what = "a positive number" if positive else "a number >= 0"
        if at_most is not None:
            what = f"a number in (0, {at_most:g}]"
        v, src = self.cited(path, raw, "<number>" if not nullable else "<number> or null")
        if v is None and nullable:
            return None
        if isinstance(v, str):  # YAML 1.1 reads 1e12 and 1.5e12 (no sign in the exponent) as strings
            try:
                v = float(v.strip())
            except ValueError:
                raise self.error(f"{path}.value", f"{what} (a float such as 1.5e12)", raw["value"]) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(f"{path}.value", f"{what} (a float such as 1.5e12)", v)
        if not math.isfinite(v):
            raise self.error(f"{path}.value", f"{what}, finite", v)
        if (positive and v <= 0) or v < 0 or (at_most is not None and v > at_most):
            raise self.error(f"{path}.value", what, v)
        self.sources[path] = src
        return float(v)

    def flag(self, path: str, raw: Any, default: bool) -> bool:
        if raw is None:
            self.sources[path] = _DEFAULT
            return default
        v, src = self.cited(path, raw, "true or false")
        if not isinstance(v, bool):
            raise self.error(f"{path}.value", "true or false", v)
        self.sources[path] = src
        return v

    def text(self, path: str, raw: Any, *, required: bool = False) -> str:
        if raw is None and not required:
            return ""
        if not isinstance(raw, str) or (required and not raw.strip()):
            raise self.error(path, "a non-empty string" if required else "a string", raw)
        return raw.strip()

    def dtype_map(self, path: str, raw: Any, allowed: tuple[str, ...], unit: str) -> dict[str, float]:
        if not isinstance(raw, dict) or not raw:
            raise self.error(path, f"a mapping from dtype ({', '.join(allowed)}) to {{value: {unit}, source: "
                             "<text>}, with at least one dtype", raw)
        out = {}
        for d, v in raw.items():
            if d not in allowed:
                raise ValueError(f"{self.where}: field '{path}' has unknown dtype {d!r}{_hint(str(d), allowed)}; "
                                 f"dtypes are {', '.join(allowed)}")
            out[d] = self.number(f"{path}.{d}", v)
        return out


def parse_chip(data: Any, where: str = "<profile>", *, path: str | None = None) -> Chip:
    """Validate a loaded YAML mapping into a :class:`Chip`.

    Args:
        data: the mapping, as ``yaml.safe_load`` returns it.
        where: what error messages name (the file).
        path: the file, recorded in :attr:`Chip.path`.

    Raises:
        ValueError: naming ``where``, the field path and the expected type.
    """
    r = _Reader(where)
    if data is None:
        raise ValueError(f"{where}: the profile is empty; it must be a mapping of fields "
                         f"({', '.join(k for k, (req, _) in _FIELDS.items() if req)} are required)")
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a chip profile must be a YAML mapping of fields, got {type(data).__name__}")
    for key in data:
        if key not in _FIELDS:
            raise ValueError(f"{where}: unknown field {key!r}{_hint(str(key), list(_FIELDS))}; "
                             f"fields are {', '.join(_FIELDS)}")
    for key, (required, expected) in _FIELDS.items():
        if required and key not in data:
            raise ValueError(f"{where}: missing required field '{key}': it must be {expected}")

    name = r.text("name", data["name"], required=True)
    description = r.text("description", data.get("description"))
    kind = data.get("kind", UNSPECIFIED_KIND)
    if kind not in (*KINDS, UNSPECIFIED_KIND):
        raise r.error("kind", _FIELDS["kind"][1], kind)
    peaks = r.dtype_map("peak_ops_per_s", data["peak_ops_per_s"], DTYPES, "<ops/s>")
    dram = r.number("dram_bandwidth_bytes_per_s", data["dram_bandwidth_bytes_per_s"], nullable=True)
    onchip = r.number("onchip_bytes", data["onchip_bytes"])
    sram = r.number("sram_bandwidth_bytes_per_s", data.get("sram_bandwidth_bytes_per_s"), nullable=True)
    efficiency = r.number("efficiency", data["efficiency"], at_most=1.0)
    if "op_overhead_s" in data:
        overhead = r.number("op_overhead_s", data["op_overhead_s"], positive=False)
    else:
        overhead, r.sources["op_overhead_s"] = 0.0, _DEFAULT
    concurrent = r.flag("concurrent_ops", data.get("concurrent_ops"), False)
    clock = r.number("clock_hz", data.get("clock_hz"), nullable=True)
    power = r.number("power_w", data.get("power_w"), nullable=True)
    energy = _energy(r, data.get("energy"))
    notes = r.text("notes", data.get("notes"))
    assert efficiency is not None and onchip is not None and overhead is not None
    return Chip(name=name, description=description, kind=kind, peak_ops_per_s=peaks,
                dram_bandwidth_bytes_per_s=dram, onchip_bytes=onchip, sram_bandwidth_bytes_per_s=sram,
                efficiency=efficiency, op_overhead_s=overhead, concurrent_ops=concurrent, clock_hz=clock,
                power_w=power, energy=energy, sources=r.sources, path=path, notes=notes)


def _energy(r: _Reader, raw: Any) -> EnergyTable:
    """The profile's energy entries over the Horowitz defaults, each with its source."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise r.error("energy", _FIELDS["energy"][1], raw)
    for key in raw:
        if key not in _ENERGY_FIELDS:
            raise ValueError(f"{r.where}: field 'energy' has unknown key {key!r}{_hint(str(key), _ENERGY_FIELDS)}; "
                             f"keys are {', '.join(_ENERGY_FIELDS)}")
    for k, src in HOROWITZ_SOURCES.items():
        r.sources[f"energy.{k}"] = src
    mac = dict(HOROWITZ_45NM.mac_pj)
    add = dict(HOROWITZ_45NM.add_pj)
    if "mac_pj" in raw:
        mac.update(r.dtype_map("energy.mac_pj", raw["mac_pj"], ENERGY_DTYPES, "<pJ>"))
    if "add_pj" in raw:
        add.update(r.dtype_map("energy.add_pj", raw["add_pj"], ENERGY_DTYPES, "<pJ>"))
    sram = HOROWITZ_45NM.sram_pj_per_byte
    dram = HOROWITZ_45NM.dram_pj_per_byte
    if "sram_pj_per_byte" in raw:
        sram = r.number("energy.sram_pj_per_byte", raw["sram_pj_per_byte"])
    if "dram_pj_per_byte" in raw:
        dram = r.number("energy.dram_pj_per_byte", raw["dram_pj_per_byte"])
    return EnergyTable(mac_pj=mac, add_pj=add, sram_pj_per_byte=sram, dram_pj_per_byte=dram)


# --- finding and loading profiles --------------------------------------------------------------------------------

BUILTIN_DIR = Path(__file__).parent / "chips"
_SUFFIXES = (".yaml", ".yml")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def user_chip_dir() -> Path:
    """Where user profiles live: ``$CHIPFIT_HOME/hw`` when CHIPFIT_HOME is set, else ``~/.config/chipfit/hw``."""
    home = os.environ.get("CHIPFIT_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".config" / "chipfit") / "hw"


def _index() -> dict[str, Path]:
    """Profile name -> file; user profiles override built-ins of the same name."""
    found: dict[str, Path] = {}
    for folder in (BUILTIN_DIR, user_chip_dir()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.iterdir()) if p.suffix in _SUFFIXES and p.is_file()})
    return found


def list_chips() -> list[str]:
    """Names of the built-in and user chip profiles, sorted."""
    return sorted(_index())


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the chip profile: {e}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ValueError(f"{path}: not valid YAML{at}: {problem}") from None


def load_chip(name_or_path: str | Path) -> Chip:
    """Load a chip profile by name or from a YAML file.

    Args:
        name_or_path: a file (a ``Path``, a name ending in .yaml/.yml, or an existing file), or a profile name,
            looked up first in :func:`user_chip_dir` and then among the built-ins.

    Raises:
        ValueError: no such file or profile (with close names), or a file that fails validation.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    by_name = not (isinstance(name_or_path, Path) or text.endswith(_SUFFIXES) or path.is_file())
    if not by_name:
        if not path.is_file():
            raise ValueError(f"chip profile {text}: no such file")
    else:
        index = _index()
        if text not in index:
            close = difflib.get_close_matches(text, list(index), n=3, cutoff=0.4)
            raise ValueError(f"unknown chip {text!r}." + (f" Did you mean: {', '.join(close)}?" if close else "")
                             + " `chipfit hw list` shows the profiles; a YAML file path works too.")
        path = index[text]
    chip = parse_chip(_read(path), str(path), path=str(path))
    if by_name and chip.name != text:
        raise ValueError(f"{path}: field 'name' is {chip.name!r} but the file is named {path.name}; make them "
                         f"agree (profiles are looked up by file name)")
    return chip
