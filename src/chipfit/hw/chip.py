"""Chip profiles, one target per chip: YAML files, every number with its source, validated into a :class:`Chip`.

A profile holds the roofline numbers (peak by dtype, DRAM bandwidth, on-chip memory, efficiency, ...) and, for a
chip whose systolic array is modelled, an ``array:`` section that the simulator runs (:attr:`Chip.array`, read by
:func:`chipfit.hw.array.parse_array`). Numbers are cited (``{value: 92e12, source: "Jouppi et al., ..."}``,
:mod:`chipfit.hw.cited`); a bad file raises ``ValueError`` naming the file, the field path
(``peak_ops_per_s.fp16.value``, ``array.rows.value``) and the expected type; no YAML traceback reaches the user.

Conventions: ``peak_ops_per_s`` counts arithmetic operations, one multiply-accumulate (MAC) being 2 operations;
bytes are bytes (not bits); energies are picojoules.

Where profiles live: the built-in ones ship in ``chipfit/hw/chips/``; a user's go in :func:`user_chip_dir`
(``$CHIPFIT_HOME/hw`` or ``~/.config/chipfit/hw``) and override a built-in of the same name. A SCALE-Sim ``.cfg``
loads too, as a chip whose roofline numbers are derived from its array (:func:`load_chip`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipfit.hw.array import Arch, parse_array, parse_scalesim_cfg
from chipfit.hw.cited import (
    DEFAULT,
    DTYPES,
    ENERGY_DTYPES,
    ENERGY_FORM,
    HOROWITZ_45NM,
    HOROWITZ_SOURCES,
    EnergyTable,
    Reader,
    read_energy,
    read_yaml,
)

# DTYPES, the energy table and its Horowitz defaults live in chipfit.hw.cited and are re-exported from here, their
# first home (chipfit.hw.roofline and users import them from chipfit.hw.chip).
__all__ = ["BUILTIN_DIR", "DEPRECATED_NAMES", "DTYPES", "ENERGY_DTYPES", "HOROWITZ_45NM", "HOROWITZ_SOURCES", "KINDS",
           "Chip", "EnergyTable", "chip_files", "deprecated_name", "list_chips", "load_chip", "load_target",
           "parse_chip", "user_chip_dir"]

KINDS = ("asic", "gpu", "cpu", "vpu", "npu", "dsp", "fpga")
UNSPECIFIED_KIND = "unspecified"

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
    "energy": (False, ENERGY_FORM),
    "array": (False, "a mapping of the simulator's systolic array: rows, cols, dataflow, ifmap_sram_bytes, "
                     "filter_sram_bytes, ofmap_sram_bytes, word_bits, vector_lanes, ... (chipfit hw show tpu-v1 shows "
                     "one), or null"),
    "notes": (False, "a string"),
}
# The simulator's old built-in architecture names, now the names of the chips that carry those arrays. They load
# (chipfit.hw.sim.load_arch) with a DeprecationWarning for one release.
DEPRECATED_NAMES = {"tpu-v1-like": "tpu-v1", "eyeriss-like": "eyeriss-v1", "diannao-like": "diannao",
                    "dadiannao-like": "dadiannao"}


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
        array: the systolic array the simulator runs (``chipfit simulate``), with the chip's clock, DRAM bandwidth
            and energy unless the profile's ``array:`` section overrides them; ``None`` for a chip whose array is
            not modelled. Its numbers' sources are in ``array.sources``.
        sources: field path (``peak_ops_per_s.int8``, ``energy.mac_pj.fp16``) -> citation, for every roofline
            number, defaults included.
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
    array: Arch | None = field(default=None, repr=False)
    sources: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    notes: str = ""

    def peak(self, dtype: str) -> float:
        """Peak operations per second at ``dtype``; ValueError naming the dtypes this chip supports."""
        if dtype not in self.peak_ops_per_s:
            raise ValueError(f"chip {self.name} has no {dtype} peak; it supports {', '.join(self.peak_ops_per_s)} "
                             f"(choose --precision accordingly)")
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

        ``array`` is the profile's array section (the array's own fields, and clock, DRAM bandwidth or energy
        entries only where the array's differ from the chip's), or ``None``.

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
        out["array"] = None if self.array is None else self.array.to_section(self)
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


def parse_chip(data: Any, where: str = "<profile>", *, path: str | None = None) -> Chip:
    """Validate a loaded YAML mapping into a :class:`Chip`.

    Args:
        data: the mapping, as ``yaml.safe_load`` returns it.
        where: what error messages name (the file).
        path: the file, recorded in :attr:`Chip.path`.

    Raises:
        ValueError: naming ``where``, the field path and the expected type.
    """
    r = Reader(where)
    if data is None:
        raise ValueError(f"{where}: the profile is empty; it must be a mapping of fields "
                         f"({', '.join(k for k, (req, _) in _FIELDS.items() if req)} are required)")
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a chip profile must be a YAML mapping of fields, got {type(data).__name__}")
    r.check_fields(data, _FIELDS)
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
        overhead, r.sources["op_overhead_s"] = 0.0, DEFAULT
    concurrent = r.flag("concurrent_ops", data.get("concurrent_ops"), False)
    clock = r.number("clock_hz", data.get("clock_hz"), nullable=True)
    power = r.number("power_w", data.get("power_w"), nullable=True)
    energy = read_energy(r, data.get("energy"))
    notes = r.text("notes", data.get("notes"))
    assert efficiency is not None and onchip is not None and overhead is not None
    chip = Chip(name=name, description=description, kind=kind, peak_ops_per_s=peaks,
                dram_bandwidth_bytes_per_s=dram, onchip_bytes=onchip, sram_bandwidth_bytes_per_s=sram,
                efficiency=efficiency, op_overhead_s=overhead, concurrent_ops=concurrent, clock_hz=clock,
                power_w=power, energy=energy, sources=r.sources, path=path, notes=notes)
    if data.get("array") is None:
        return chip

    return dataclasses.replace(chip, array=parse_array(data["array"], chip, where))


def _from_scalesim_cfg(path: Path) -> Chip:
    """A chip whose roofline numbers follow from a SCALE-Sim config's array (int8: 1-byte words), and that array."""

    arch = parse_scalesim_cfg(path)
    cfg = f"derived from SCALE-Sim config {path.name}"
    macs = arch.rows * arch.cols
    onchip = arch.ifmap_sram_bytes + arch.filter_sram_bytes + arch.ofmap_sram_bytes
    dram = arch.dram_bandwidth_bytes_per_s
    data = {
        "name": arch.name, "description": arch.description, "kind": "asic",
        "peak_ops_per_s": {"int8": {"value": macs * 2 * arch.clock_hz, "source": (
            f"{cfg}: ArrayHeight x ArrayWidth = {arch.rows} x {arch.cols} = {macs:,} MACs x 2 ops x "
            f"{arch.clock_hz / 1e9:g} GHz (SCALE-Sim's 1-byte words; the clock is assumed, the config has none)")}},
        "dram_bandwidth_bytes_per_s": None if dram is None else {"value": dram, "source": (
            f"{cfg}: {arch.sources['dram_bandwidth_bytes_per_s'].removeprefix('SCALE-Sim config: ')} x "
            f"{arch.clock_hz / 1e9:g} GHz")},
        "onchip_bytes": {"value": onchip, "source": f"{cfg}: IfmapSramSzkB + FilterSramSzkB + OfmapSramSzkB = "
                                                    f"{onchip // 1024:,} kB x 1024"},
        "efficiency": {"value": 1.0, "source": "assumption: the roofline takes SCALE-Sim's array at its peak (the "
                                               "simulator computes its real utilisation)"},
        "op_overhead_s": {"value": 0.0, "source": "assumption: SCALE-Sim models no per-layer overhead"},
        "concurrent_ops": {"value": False, "source": "assumption: one array runs one layer at a time"},
        "clock_hz": {"value": arch.clock_hz, "source": arch.sources["clock_hz"]},
    }
    return dataclasses.replace(parse_chip(data, str(path), path=str(path)), array=arch)


# --- finding and loading profiles --------------------------------------------------------------------------------

BUILTIN_DIR = Path(__file__).parent / "chips"
_SUFFIXES = (".yaml", ".yml")


def user_chip_dir() -> Path:
    """Where user profiles live: ``$CHIPFIT_HOME/hw`` when CHIPFIT_HOME is set, else ``~/.config/chipfit/hw``."""
    home = os.environ.get("CHIPFIT_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".config" / "chipfit") / "hw"


def chip_files() -> dict[str, Path]:
    """Profile name -> file, for every built-in and user profile; user profiles override built-ins of the same name."""
    found: dict[str, Path] = {}
    for folder in (BUILTIN_DIR, user_chip_dir()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.iterdir()) if p.suffix in _SUFFIXES and p.is_file()})
    return found


def list_chips() -> list[str]:
    """Names of the built-in and user chip profiles, sorted."""
    return sorted(chip_files())


def deprecated_name(spec: object) -> str | None:
    """The chip that replaces an old simulator architecture name (``tpu-v1-like`` -> ``tpu-v1``), else ``None``.

    ``None`` too where a profile of that name exists (a user's own ``tpu-v1-like.yaml`` is no old name).
    """
    if not isinstance(spec, str) or spec not in DEPRECATED_NAMES or spec in chip_files():
        return None
    return DEPRECATED_NAMES[spec]


def load_chip(spec: str | Path | Chip) -> Chip:
    """A target: a chip profile by name, from a YAML file, or derived from a SCALE-Sim ``.cfg``.

    Args:
        spec: a :class:`Chip` (returned as is); a SCALE-Sim ``.cfg`` file (a chip whose roofline numbers follow
            from its array: peak = rows x cols x 2 ops x clock at int8, DRAM bandwidth from Bandwidth, none in CALC
            mode, on-chip memory = the three SRAMs, efficiency 1.0; its :attr:`Chip.array` is the config's); a YAML
            file (a ``Path``, a name ending in .yaml/.yml, or an existing file); or a profile name, looked up first
            in :func:`user_chip_dir` and then among the built-ins.

    Raises:
        ValueError: no such file or profile (with close names), or a file that fails validation.
    """
    if isinstance(spec, Chip):
        return spec
    text = str(spec)
    path = Path(text).expanduser()
    if text.endswith(".cfg"):
        if not path.is_file():
            raise ValueError(f"SCALE-Sim config {text}: no such file")
        return _from_scalesim_cfg(path)
    by_name = not (isinstance(spec, Path) or text.endswith(_SUFFIXES) or path.is_file())
    if not by_name:
        if not path.is_file():
            raise ValueError(f"chip profile {text}: no such file")
    else:
        index = chip_files()
        if text not in index:
            if text in DEPRECATED_NAMES:
                raise ValueError(f"unknown chip {text!r}: that was the simulator's name for "
                                 f"{DEPRECATED_NAMES[text]!r}; use --hw {DEPRECATED_NAMES[text]}")
            close = difflib.get_close_matches(text, list(index), n=3, cutoff=0.4)
            raise ValueError(f"unknown chip {text!r}." + (f" Did you mean: {', '.join(close)}?" if close else "")
                             + " `chipfit hw list` shows the profiles; a YAML file or a SCALE-Sim .cfg works too.")
        path = index[text]
    chip = parse_chip(read_yaml(path), str(path), path=str(path))
    if by_name and chip.name != text:
        raise ValueError(f"{path}: field 'name' is {chip.name!r} but the file is named {path.name}; make them "
                         f"agree (profiles are looked up by file name)")
    return chip


# One name for a target: a chip profile is what both the roofline model and the simulator load.
load_target = load_chip
