"""Chip profiles: YAML files, one per chip, every number with its source, validated into a :class:`Chip`.

A number is written ``{value: 92e12, source: "Jouppi et al., ISCA 2017: ..."}``; an assumption says so in its
source (``source: "assumption: ..."``). A bad file raises ``ValueError`` naming the file, the field and the
expected type.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DTYPES = ("fp32", "fp16", "bf16", "int16", "int8", "int4")
KINDS = ("asic", "gpu", "cpu", "vpu", "npu", "dsp", "fpga")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation and per byte.

    Attributes:
        mac_pj: one multiply-add, by dtype.
        add_pj: one non-MAC arithmetic operation (element-wise, activation, normalisation), by dtype.
        sram_pj_per_byte: one byte read or written in on-chip memory.
        dram_pj_per_byte: one byte read or written in DRAM.
    """

    mac_pj: dict[str, float]
    add_pj: dict[str, float]
    sram_pj_per_byte: float
    dram_pj_per_byte: float


# Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm, 0.9 V): a MAC is a multiply plus an add.
HOROWITZ_45NM = EnergyTable(
    mac_pj={"int8": 0.2 + 0.03, "int16": 0.6 + 0.05, "int32": 3.1 + 0.1, "fp16": 1.1 + 0.4, "bf16": 1.1 + 0.4,
            "fp32": 3.7 + 0.9, "int4": 0.1 + 0.02},
    add_pj={"int8": 0.03, "int16": 0.05, "int32": 0.1, "fp16": 0.4, "bf16": 0.4, "fp32": 0.9, "int4": 0.02},
    sram_pj_per_byte=100 / 8,  # 1 MB SRAM, 100 pJ per 64-bit access
    dram_pj_per_byte=640 / 4,  # 640 pJ per 32-bit DRAM word (the figure Han et al. use)
)
HOROWITZ_SOURCES = {
    "mac_pj": "Horowitz ISSCC 2014, 45 nm: multiply + add (int8 0.2+0.03, fp16 1.1+0.4, fp32 3.7+0.9, int32 3.1+0.1 "
    "pJ); int16 and int4 are assumptions interpolated between the 8- and 32-bit figures",
    "add_pj": "Horowitz ISSCC 2014, 45 nm: int8 add 0.03 pJ, int32 0.1, fp16 0.4, fp32 0.9 (int16/int4 assumed)",
    "sram_pj_per_byte": "Horowitz ISSCC 2014: 1 MB SRAM 100 pJ per 64-bit access = 12.5 pJ/byte",
    "dram_pj_per_byte": "Horowitz ISSCC 2014 / Han et al.: 640 pJ per 32-bit DRAM access = 160 pJ/byte",
}

# field -> (required, kind) where kind is "number", "number?" (may be null), "bool", "str", "dtype-map"
_FIELDS: dict[str, tuple[bool, str]] = {
    "name": (True, "str"),
    "description": (False, "str"),
    "kind": (False, "str"),
    "peak_ops_per_s": (True, "dtype-map"),
    "dram_bandwidth_bytes_per_s": (True, "number?"),
    "onchip_bytes": (True, "number"),
    "sram_bandwidth_bytes_per_s": (False, "number?"),
    "efficiency": (True, "number"),
    "op_overhead_s": (False, "number"),
    "concurrent_ops": (False, "bool"),
    "clock_hz": (False, "number?"),
    "power_w": (False, "number?"),
    "energy": (False, "energy"),
    "notes": (False, "str"),
}


@dataclass(frozen=True)
class Chip:
    """A chip's capabilities as used by the roofline model.

    Attributes:
        name: profile name (``jetson-tx2``).
        description: one line.
        kind: asic, gpu, cpu, vpu, npu, dsp or fpga.
        peak_ops_per_s: arithmetic operations per second by dtype (one MAC = 2 operations).
        dram_bandwidth_bytes_per_s: off-chip bandwidth; ``None`` for a chip with no DRAM (the model lives on chip).
        onchip_bytes: on-chip memory (SRAM/eDRAM/cache) available to the network.
        sram_bandwidth_bytes_per_s: on-chip bandwidth where known, else ``None`` (not a limit).
        efficiency: fraction of peak that dense layers reach.
        op_overhead_s: fixed cost per executed op (kernel launch, instruction issue).
        concurrent_ops: whether independent ops may overlap (network time = critical path).
        clock_hz, power_w: where known.
        energy: energy table (Horowitz 45 nm defaults for what the profile leaves out).
        sources: field path -> citation, for every number given.
        path: the file it was loaded from.
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

    def peak(self, dtype: str) -> float:
        """Peak operations per second at ``dtype``; ValueError naming the dtypes this chip supports."""
        if dtype not in self.peak_ops_per_s:
            raise ValueError(f"chip {self.name} has no {dtype} peak; it supports {', '.join(self.peak_ops_per_s)} "
                             f"(choose --dtype accordingly)")
        return self.peak_ops_per_s[dtype]

    def ridge(self, dtype: str) -> float | None:
        """Ops per DRAM byte where the roofline turns from memory- to compute-bound."""
        bw = self.dram_bandwidth_bytes_per_s
        return self.peak(dtype) * self.efficiency / bw if bw else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, numbers with their sources."""

        def cited(path: str, v: Any) -> Any:
            return {"value": v, "source": self.sources.get(path, "")} if v is not None else None

        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "peak_ops_per_s": {d: cited(f"peak_ops_per_s.{d}", v) for d, v in self.peak_ops_per_s.items()},
            "dram_bandwidth_bytes_per_s": cited("dram_bandwidth_bytes_per_s", self.dram_bandwidth_bytes_per_s),
            "onchip_bytes": cited("onchip_bytes", self.onchip_bytes),
            "sram_bandwidth_bytes_per_s": cited("sram_bandwidth_bytes_per_s", self.sram_bandwidth_bytes_per_s),
            "efficiency": cited("efficiency", self.efficiency),
            "op_overhead_s": cited("op_overhead_s", self.op_overhead_s),
            "concurrent_ops": self.concurrent_ops,
            "clock_hz": cited("clock_hz", self.clock_hz),
            "power_w": cited("power_w", self.power_w),
            "energy": {
                "mac_pj": {d: cited(f"energy.mac_pj.{d}", v) for d, v in self.energy.mac_pj.items()},
                "add_pj": {d: cited(f"energy.add_pj.{d}", v) for d, v in self.energy.add_pj.items()},
                "sram_pj_per_byte": cited("energy.sram_pj_per_byte", self.energy.sram_pj_per_byte),
                "dram_pj_per_byte": cited("energy.dram_pj_per_byte", self.energy.dram_pj_per_byte),
            },
            "path": self.path,
        }


# --- loading and validation -------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, where: str):
        self.where = where
        self.sources: dict[str, str] = {}

    def error(self, path: str, expected: str, got: Any = None) -> ValueError:
        got_s = "" if got is None else f", got {type(got).__name__} {got!r}"[:120]
        return ValueError(f"{self.where}: field '{path}' must be {expected}{got_s}")

    def number(self, path: str, raw: Any, *, nullable: bool = False, positive: bool = True) -> float | None:
        if raw is None and nullable:
            return None
        if not isinstance(raw, dict):
            if isinstance(raw, (int, float, str)) and not isinstance(raw, bool):
                raise ValueError(f"{self.where}: field '{path}' is a bare value ({raw!r}); give it a source: "
                                 f"{{value: {raw}, source: \"where it comes from, or 'assumption: why'\"}}")
            raise self.error(path, "a mapping {value: <number>, source: <text>}" + (" or null" if nullable else ""),
                             raw)
        unknown = set(raw) - {"value", "source"}
        if unknown:
            raise self.error(path, "a mapping with only 'value' and 'source' keys", sorted(unknown))
        if "source" not in raw or not isinstance(raw["source"], str) or not raw["source"].strip():
            raise self.error(f"{path}.source", "a non-empty string saying where the number comes from "
                             "(or 'assumption: ...')", raw.get("source"))
        v = raw.get("value")
        if v is None and nullable:
            return None
        if isinstance(v, bool):
            raise self.error(f"{path}.value", "a number", v)
        if isinstance(v, str):  # YAML reads 1e12 (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                raise self.error(f"{path}.value", "a number", v) from None
        if not isinstance(v, (int, float)):
            raise self.error(f"{path}.value", "a number", v)
        if positive and v <= 0:
            raise self.error(f"{path}.value", "a positive number", v)
        if v < 0:
            raise self.error(f"{path}.value", "a non-negative number", v)
        self.sources[path] = raw["source"].strip()
        return float(v)

    def dtype_map(self, path: str, raw: Any, required: bool) -> dict[str, float]:
        if raw is None and not required:
            return {}
        if not isinstance(raw, dict) or (required and not raw):
            raise self.error(path, f"a mapping from dtype ({', '.join(DTYPES)}) to {{value, source}}", raw)
        out = {}
        for d, v in raw.items():
            if d not in DTYPES and d != "int32":
                hint = difflib.get_close_matches(str(d), DTYPES, n=1)
                raise ValueError(f"{self.where}: field '{path}' has unknown dtype {d!r}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else f"; use one of {', '.join(DTYPES)}"))
            out[d] = self.number(f"{path}.{d}", v)
        return out


def parse_chip(data: Any, where: str = "<profile>") -> Chip:
    """Validate a loaded YAML mapping into a :class:`Chip` (errors name ``where``, the field and the type)."""
    r = _Reader(where)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a chip profile must be a YAML mapping of fields, got {type(data).__name__}")
    for key in data:
        if key not in _FIELDS:
            hint = difflib.get_close_matches(str(key), list(_FIELDS), n=1)
            raise ValueError(f"{where}: unknown field {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else
                                                                    f"; fields are {', '.join(_FIELDS)}"))
    for key, (required, _) in _FIELDS.items():
        if required and key not in data:
            raise ValueError(f"{where}: missing required field '{key}'")
    for key in ("name", "description", "kind", "notes"):
        if key in data and not isinstance(data[key], str):
            raise r.error(key, "a string", data[key])
    kind = data.get("kind", "asic")
    if kind not in KINDS:
        raise r.error("kind", f"one of {', '.join(KINDS)}", kind)
    concurrent = data.get("concurrent_ops", False)
    if isinstance(concurrent, dict):
        concurrent = concurrent.get("value")
    if not isinstance(concurrent, bool):
        raise r.error("concurrent_ops", "true or false", concurrent)
    efficiency = r.number("efficiency", data["efficiency"])
    if efficiency > 1:
        raise r.error("efficiency.value", "a fraction in (0, 1]", efficiency)
    energy_raw = data.get("energy") or {}
    if not isinstance(energy_raw, dict):
        raise r.error("energy", "a mapping with mac_pj, add_pj, sram_pj_per_byte, dram_pj_per_byte", energy_raw)
    bad = set(energy_raw) - {"mac_pj", "add_pj", "sram_pj_per_byte", "dram_pj_per_byte"}
    if bad:
        raise r.error("energy", "a mapping with only mac_pj, add_pj, sram_pj_per_byte, dram_pj_per_byte",
                      sorted(bad))
    mac = {**HOROWITZ_45NM.mac_pj, **r.dtype_map("energy.mac_pj", energy_raw.get("mac_pj"), False)}
    add = {**HOROWITZ_45NM.add_pj, **r.dtype_map("energy.add_pj", energy_raw.get("add_pj"), False)}
    sram = r.number("energy.sram_pj_per_byte", energy_raw["sram_pj_per_byte"]) \
        if "sram_pj_per_byte" in energy_raw else HOROWITZ_45NM.sram_pj_per_byte
    dram = r.number("energy.dram_pj_per_byte", energy_raw["dram_pj_per_byte"]) \
        if "dram_pj_per_byte" in energy_raw else HOROWITZ_45NM.dram_pj_per_byte
    for k, src in HOROWITZ_SOURCES.items():
        for d in (mac if k == "mac_pj" else add if k == "add_pj" else {None: 0}):
            path = f"energy.{k}.{d}" if d else f"energy.{k}"
            r.sources.setdefault(path, src)
    chip = Chip(
        name=data["name"],
        description=data.get("description", ""),
        kind=kind,
        peak_ops_per_s=r.dtype_map("peak_ops_per_s", data["peak_ops_per_s"], True),
        dram_bandwidth_bytes_per_s=r.number("dram_bandwidth_bytes_per_s", data["dram_bandwidth_bytes_per_s"],
                                            nullable=True),
        onchip_bytes=r.number("onchip_bytes", data["onchip_bytes"]),
        sram_bandwidth_bytes_per_s=r.number("sram_bandwidth_bytes_per_s", data.get("sram_bandwidth_bytes_per_s"),
                                            nullable=True),
        efficiency=efficiency,
        op_overhead_s=r.number("op_overhead_s", data["op_overhead_s"], positive=False)
        if "op_overhead_s" in data else 0.0,
        concurrent_ops=concurrent,
        clock_hz=r.number("clock_hz", data.get("clock_hz"), nullable=True),
        power_w=r.number("power_w", data.get("power_w"), nullable=True),
        energy=EnergyTable(mac, add, sram, dram),
        sources=r.sources,
        path=None if where == "<profile>" else where,
    )
    return chip


BUILTIN_DIR = Path(__file__).parent / "chips"


def user_chip_dir() -> Path:
    """Where user profiles live: ``$CHIPFIT_HOME/hw`` or ``~/.config/chipfit/hw``."""
    home = os.environ.get("CHIPFIT_HOME")
    return (Path(home) if home else Path.home() / ".config" / "chipfit") / "hw"


def _index() -> dict[str, Path]:
    found = {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.yaml"))}
    udir = user_chip_dir()
    if udir.is_dir():
        found.update({p.stem: p for p in sorted(udir.glob("*.y*ml"))})  # user profiles override built-ins
    return found


def list_chips() -> list[str]:
    """Names of the built-in and user chip profiles."""
    return sorted(_index())


def load_chip(name_or_path: str | Path) -> Chip:
    """Load a chip by name (user folder first, then built-in) or from a YAML file."""
    text = str(name_or_path)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ValueError(f"chip profile {text}: no such file")
    else:
        index = _index()
        if text not in index:
            close = difflib.get_close_matches(text, list(index), n=3, cutoff=0.4)
            raise ValueError(f"unknown chip {text!r}." + (f" Did you mean: {', '.join(close)}?" if close else "")
                             + " `chipfit hw list` shows the profiles; a YAML file path works too.")
        path = index[text]
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    return parse_chip(data, str(path))
