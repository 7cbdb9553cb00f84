"""A target's systolic array (:class:`Arch`): the ``array:`` section of a chip profile, or a SCALE-Sim ``.cfg``.

A chip profile (``chipfit/hw/chips/<chip>.yaml``, :mod:`chipfit.hw.chip`) that models an array has an ``array:``
section, every number cited as in the rest of the file::

    array:
      rows: {value: 256, source: "Jouppi et al., ISCA 2017: 256x256 matrix multiply unit of 8-bit MACs"}
      cols: {value: 256, source: "..."}
      dataflow: {value: ws, source: "..."}
      ...

The array runs at the chip's ``clock_hz``, with its ``dram_bandwidth_bytes_per_s`` (null: no DRAM, so not a limit)
and its ``energy`` table; the section may override any of the three (``array.clock_hz``, ...) where the
simulator's figure differs from the roofline's, each override with its own source. A bad section raises
``ValueError`` naming the file and the field (``array.rows.value``).

A SCALE-Sim ``.cfg`` (``[architecture_presets]`` ArrayHeight, ArrayWidth, IfmapSramSzkB, FilterSramSzkB,
OfmapSramSzkB, Dataflow; ``[run_presets]`` InterfaceBandwidth and, in USER mode, Bandwidth in words per cycle) loads
with SCALE-Sim's conventions: 1-byte words, 1 kB = 1024 bytes, unlimited DRAM bandwidth in CALC mode (SCALE-Sim
reports no stalls there), partial sums of every reduction fold written to DRAM, and a 1 GHz clock (the .cfg has none).

Before chip profiles carried arrays, the simulator read its own YAML files (``archs/tpu-v1-like.yaml``: the array's
fields at the top level, with name, clock_hz and dram_bandwidth_bytes_per_s); :func:`load_arch` still reads such a
file (:func:`parse_arch`), and the old built-in names (:data:`chipfit.hw.chip.DEPRECATED_NAMES`), with a
``DeprecationWarning``.

This module holds the array's record and its readers; :mod:`chipfit.hw.chip` attaches an array to its chip, and
:mod:`chipfit.hw.sim.arch` finds the array the simulator runs. Functions that read a chip take it as the chip record
(``name``, ``description``, ``path``, ``clock_hz``, ``dram_bandwidth_bytes_per_s``, ``energy``, ``sources``) without
importing its module, which imports this one.
"""

from __future__ import annotations

import configparser
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipfit.hw.cited import (
    ENERGY_FORM,
    HOROWITZ_45NM,
    HOROWITZ_SOURCES,
    EnergyTable,
    Reader,
    _show,
    read_energy,
)

DATAFLOWS = ("ws", "os", "is")
SPARSITY_KINDS = ("nm", "unstructured")

# array-section field -> (required, expected form)
ARRAY_FIELDS: dict[str, tuple[bool, str]] = {
    "rows": (True, "{value: <PE rows, an integer>, source: <text>}"),
    "cols": (True, "{value: <PE columns, an integer>, source: <text>}"),
    "dataflow": (True, "{value: ws, os or is, source: <text>}"),
    "ifmap_sram_bytes": (True, "{value: <bytes>, source: <text>}"),
    "filter_sram_bytes": (True, "{value: <bytes>, source: <text>}"),
    "ofmap_sram_bytes": (True, "{value: <bytes>, source: <text>}"),
    "word_bits": (True, "{value: <bits of one MAC operand, e.g. 8>, source: <text>}"),
    "vector_lanes": (True, "{value: <operations per cycle of the vector unit>, source: <text>}"),
    "sparsity": (False, "{value: [nm, unstructured] (any of them, or []), source: <text>}"),
    "index_bits": (False, "{value: <bits of one sparse-weight index>, source: <text>}"),
    "link_bandwidth_bytes_per_s": (False, "{value: <bytes/s of one chip-to-chip link>, source: <text>} or null"),
    "links": (False, "{value: <links per chip>, source: <text>}"),
    "psum_to_dram": (False, "{value: true or false, source: <text>}"),
    "clock_hz": (False, "{value: <Hz>, source: <text>}, only where the array's clock differs from the chip's"),
    "dram_bandwidth_bytes_per_s": (False, "{value: <bytes/s> or null (unlimited), source: <text>}, only where the "
                                          "simulator's figure differs from the chip's"),
    "energy": (False, f"{ENERGY_FORM}: entries over the chip's energy table, only where they differ"),
    "notes": (False, "a string"),
}
_OWN_KEYS = ("rows", "cols", "dataflow", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "word_bits",
             "vector_lanes", "sparsity", "index_bits", "link_bandwidth_bytes_per_s", "links", "psum_to_dram")
# the old architecture files: the array's fields at the top level, clock and DRAM bandwidth required
_OLD_FIELDS: dict[str, tuple[bool, str]] = {
    "name": (True, "a non-empty string"),
    "description": (False, "a string"),
    **ARRAY_FIELDS,
    "clock_hz": (True, "{value: <Hz>, source: <text>}"),
    "dram_bandwidth_bytes_per_s": (True, "{value: <bytes/s>, source: <text>}, or null for unlimited"),
    "energy": (False, ENERGY_FORM),
}
_UNLIMITED = "unlimited (null in the file)"
_DEFAULT_INDEX = "default: 4-bit step index (Cambricon-X style)"
_NO_DRAM = "unlimited: the chip has no off-chip DRAM (dram_bandwidth_bytes_per_s: null), so DRAM is not a limit"


@dataclass(frozen=True)
class Arch:
    """A systolic-array accelerator.

    Attributes:
        name: the target's name (the chip profile's).
        description: one line.
        rows: PE rows of the systolic array (SCALE-Sim's ArrayHeight).
        cols: PE columns (ArrayWidth).
        dataflow: default dataflow, ``ws`` (weight-), ``os`` (output-) or ``is`` (input-stationary).
        ifmap_sram_bytes: input-feature-map SRAM (double buffered: half is read while the other half fills).
        filter_sram_bytes: weight SRAM.
        ofmap_sram_bytes: output SRAM.
        word_bits: width of one MAC operand in the array; wider data takes ceil(bits / word_bits)^2 passes.
        dram_bandwidth_bytes_per_s: off-chip bandwidth; ``None`` is unlimited (no stalls, SCALE-Sim's CALC mode).
        clock_hz: array clock.
        vector_lanes: operations per cycle of the vector unit that runs element-wise, pooling and normalisation.
        energy: pJ per MAC (by dtype), per vector operation, per SRAM byte and per DRAM byte.
        sparsity: weight-sparsity kinds the array exploits: ``nm`` (N:M structured) and ``unstructured``.
        index_bits: bits of one index in the unstructured (Cambricon-X step-index) format.
        link_bandwidth_bytes_per_s: one chip-to-chip link, for multi-chip pipelines; ``None`` if the chip has none.
        links: links per chip (used together between neighbouring pipeline stages).
        psum_to_dram: write the partial sums of every reduction fold to DRAM (SCALE-Sim's convention) instead of
            accumulating them in the output SRAM while they fit.
        sources: field -> citation, for every number (defaults and what the chip gives included).
        path: the file it came from.
        notes: free text.
    """

    name: str
    rows: int
    cols: int
    dataflow: str
    ifmap_sram_bytes: int
    filter_sram_bytes: int
    ofmap_sram_bytes: int
    word_bits: int
    dram_bandwidth_bytes_per_s: float | None
    clock_hz: float
    vector_lanes: int
    energy: EnergyTable = field(repr=False)
    description: str = ""
    sparsity: tuple[str, ...] = ()
    index_bits: int = 4
    link_bandwidth_bytes_per_s: float | None = None
    links: int = 1
    psum_to_dram: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    path: str | None = None
    notes: str = ""

    @property
    def dram_bytes_per_cycle(self) -> float | None:
        bw = self.dram_bandwidth_bytes_per_s
        return None if bw is None else bw / self.clock_hz

    @property
    def peak_macs_per_s(self) -> float:
        return self.rows * self.cols * self.clock_hz

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary, every number with its source."""
        def cited(key: str) -> dict[str, Any]:
            return {"value": getattr(self, key), "source": self.sources.get(key, "")}

        keys = ("rows", "cols", "dataflow", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "word_bits",
                "dram_bandwidth_bytes_per_s", "clock_hz", "vector_lanes", "index_bits", "link_bandwidth_bytes_per_s",
                "links", "psum_to_dram")
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        out.update({k: cited(k) for k in keys})
        out["sparsity"] = {"value": list(self.sparsity), "source": self.sources.get("sparsity", "")}
        e = self.energy
        out["energy"] = {"mac_pj": e.mac_pj, "add_pj": e.add_pj, "sram_pj_per_byte": e.sram_pj_per_byte,
                         "dram_pj_per_byte": e.dram_pj_per_byte}
        out["path"] = self.path
        return out

    def to_section(self, chip: Any) -> dict[str, Any]:
        """The ``array:`` section of ``chip``'s profile that reads back into this array.

        The array's own fields, plus ``clock_hz``, ``dram_bandwidth_bytes_per_s`` and energy entries where they
        (or their sources) differ from the chip's.
        """
        def cited(key: str, value: Any) -> dict[str, Any]:
            return {"value": value, "source": self.sources.get(key, "")}

        out: dict[str, Any] = {k: cited(k, getattr(self, k)) for k in _OWN_KEYS}
        out["sparsity"] = cited("sparsity", list(self.sparsity))
        if self.link_bandwidth_bytes_per_s is None:
            out["link_bandwidth_bytes_per_s"] = None  # no link: null, which needs no source
        inherited = _inherited_sources(chip)
        if self.clock_hz != chip.clock_hz or self.sources.get("clock_hz") != inherited.get("clock_hz"):
            out["clock_hz"] = cited("clock_hz", self.clock_hz)
        key = "dram_bandwidth_bytes_per_s"
        if self.dram_bandwidth_bytes_per_s != chip.dram_bandwidth_bytes_per_s or \
                self.sources.get(key) != inherited.get(key):
            out[key] = cited(key, self.dram_bandwidth_bytes_per_s)
        energy: dict[str, Any] = {}
        mine, theirs = self.energy, chip.energy
        for table in ("mac_pj", "add_pj"):
            for d, v in getattr(mine, table).items():
                path = f"energy.{table}.{d}"
                if v != getattr(theirs, table).get(d) or self.sources.get(path) != inherited.get(path):
                    energy.setdefault(table, {})[d] = cited(path, v)
        for k in ("sram_pj_per_byte", "dram_pj_per_byte"):
            path = f"energy.{k}"
            if getattr(mine, k) != getattr(theirs, k) or self.sources.get(path) != inherited.get(path):
                energy[k] = cited(path, getattr(mine, k))
        if energy:
            out["energy"] = energy
        if self.notes:
            out["notes"] = self.notes
        return out


# --- YAML --------------------------------------------------------------------------------------------------------


def _inherited_sources(chip: Any) -> dict[str, str]:
    """The sources of what an array takes from its chip: clock, DRAM bandwidth, energy."""
    out = {k: v for k, v in chip.sources.items() if k == "clock_hz" or k.startswith("energy.")}
    key = "dram_bandwidth_bytes_per_s"
    out[key] = _NO_DRAM if chip.dram_bandwidth_bytes_per_s is None else chip.sources.get(key, "")
    return out


def _read_array(r: Reader, data: Mapping[str, Any], *, name: str, description: str, path: str | None,
                clock: float | None, dram: float | None, energy: EnergyTable) -> Arch:
    """The array's fields over what it inherits (``clock``, ``dram``, ``energy``, their sources in ``r``)."""
    ints = {k: r.integer(k, data[k]) for k in ("rows", "cols", "ifmap_sram_bytes", "filter_sram_bytes",
                                                "ofmap_sram_bytes", "word_bits", "vector_lanes")}
    dataflow, src = r.cited("dataflow", data["dataflow"], "ws, os or is")
    if dataflow not in DATAFLOWS:
        raise r.error("dataflow.value", "ws, os or is", dataflow)
    r.sources["dataflow"] = src
    if "clock_hz" in data:
        clock = r.number("clock_hz", data["clock_hz"])
    if clock is None:
        raise ValueError(f"{r.where}: the array needs a clock: give the chip's field 'clock_hz' (or "
                         f"'{r.prefix}clock_hz')")
    key = "dram_bandwidth_bytes_per_s"
    if key in data:
        raw = data[key]
        dram = r.number(key, raw, nullable=True)
        if dram is None:
            given = raw.get("source") if isinstance(raw, dict) else None
            r.sources[key] = given.strip() if isinstance(given, str) and given.strip() else _UNLIMITED
    energy = read_energy(r, data.get("energy"), base=energy, base_sources=None)  # a copy: arrays share no dicts
    sparsity: tuple[str, ...] = ()
    if "sparsity" in data:
        value, src = r.cited("sparsity", data["sparsity"], "[nm, unstructured]")
        if not isinstance(value, list) or any(v not in SPARSITY_KINDS for v in value):
            raise r.error("sparsity.value", f"a list of {', '.join(SPARSITY_KINDS)} (or [])", value)
        sparsity, r.sources["sparsity"] = tuple(value), src
    else:
        r.sources["sparsity"] = "default: dense only"
    index_bits = r.integer("index_bits", data["index_bits"]) if "index_bits" in data else 4
    r.sources.setdefault("index_bits", _DEFAULT_INDEX)
    link = r.number("link_bandwidth_bytes_per_s", data.get("link_bandwidth_bytes_per_s"), nullable=True)
    links = r.integer("links", data["links"]) if "links" in data else 1
    r.sources.setdefault("links", "default: 1")
    psum = r.flag("psum_to_dram", data.get("psum_to_dram"), False)
    return Arch(name=name, description=description, dataflow=dataflow, dram_bandwidth_bytes_per_s=dram,
                clock_hz=clock, energy=energy, sparsity=sparsity, index_bits=index_bits,
                link_bandwidth_bytes_per_s=link, links=links, psum_to_dram=psum, sources=r.sources, path=path,
                notes=r.text("notes", data.get("notes")), **ints)


def parse_array(raw: Any, chip: Any, where: str | None = None) -> Arch:
    """Validate a chip profile's ``array:`` section into the :class:`Arch` the simulator runs.

    Args:
        raw: the section, as the YAML file holds it.
        chip: the chip it belongs to, read from the rest of the file: the array takes its name, description,
            path, clock, DRAM bandwidth and energy unless the section overrides them.
        where: what error messages name (default: the chip's file).

    Raises:
        ValueError: naming the file and the field path (``array.rows.value``).
    """
    r = Reader(where or chip.path or "<profile>", prefix="array.")
    if not isinstance(raw, dict):
        raise ValueError(f"{r.where}: field 'array' must be a mapping of the simulator's array fields "
                         f"({', '.join(k for k, (req, _) in ARRAY_FIELDS.items() if req)} are required), got "
                         f"{type(raw).__name__}")
    r.check_fields(raw, ARRAY_FIELDS)
    r.sources.update(_inherited_sources(chip))
    return _read_array(r, raw, name=chip.name, description=chip.description, path=chip.path,
                       clock=chip.clock_hz, dram=chip.dram_bandwidth_bytes_per_s, energy=chip.energy)


def parse_arch(data: Any, where: str = "<arch>", *, path: str | None = None) -> Arch:
    """Validate an old-format architecture file (the array's fields at the top level) into an :class:`Arch`.

    Deprecated: a chip profile's ``array:`` section (:func:`parse_array`) replaces these files.
    """
    r = Reader(where)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: an architecture must be a YAML mapping of fields "
                         f"({', '.join(k for k, (req, _) in _OLD_FIELDS.items() if req)} are required)")
    r.check_fields(data, _OLD_FIELDS)
    name = r.text("name", data["name"], required=True)
    r.sources.update({f"energy.{k}": v for k, v in HOROWITZ_SOURCES.items()})
    return _read_array(r, data, name=name, description=r.text("description", data.get("description")), path=path,
                       clock=None, dram=None, energy=HOROWITZ_45NM)


def _is_old_arch(data: Any) -> bool:
    return isinstance(data, dict) and "rows" in data and "array" not in data and "peak_ops_per_s" not in data


# --- SCALE-Sim .cfg ----------------------------------------------------------------------------------------------

_CFG_SOURCE = "SCALE-Sim config"
_CFG_MAX_INT = 2**31 - 1  # SCALE-Sim reads these as 32-bit integers


def _cfg_problem(e: configparser.Error) -> str:
    """What is wrong with the file's structure, on one line (configparser's own messages span several)."""
    if isinstance(e, configparser.MissingSectionHeaderError):
        return f"line {e.lineno}: {_show(e.line.rstrip())} comes before any [section] header"
    if isinstance(e, configparser.ParsingError):
        lineno, line = e.errors[0]
        more = f" (and {len(e.errors) - 1} more lines)" if len(e.errors) > 1 else ""
        return f"line {lineno}: cannot parse {line[:40]}{more}; lines are '[section]' or 'Key: value'"
    if isinstance(e, configparser.DuplicateOptionError):
        return f"line {e.lineno}: field {_show(e.option)} appears twice in section [{e.section[:40]}]"
    if isinstance(e, configparser.DuplicateSectionError):
        return f"line {e.lineno}: section [{e.section[:40]}] appears twice"
    return str(e).splitlines()[0][:200] if str(e).strip() else type(e).__name__


def parse_scalesim_cfg(path: str | Path) -> Arch:
    """An :class:`Arch` from a SCALE-Sim ``.cfg`` file, with SCALE-Sim's conventions (see the module docstring).

    Raises:
        ValueError: one line naming the file and the field (or the line, for a file configparser cannot read): sizes
            must be positive integers below 2^31, ``Bandwidth`` (USER mode) a positive finite number of words per
            cycle.
    """
    path = Path(path)
    cp = configparser.ConfigParser(interpolation=None)  # SCALE-Sim's values are literal: a '%' is no substitution
    try:
        cp.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the SCALE-Sim config: {e}") from None
    except configparser.Error as e:
        raise ValueError(f"{path}: not a SCALE-Sim config: {_cfg_problem(e)}") from None
    sec = "architecture_presets"
    if not cp.has_section(sec):
        raise ValueError(f"{path}: missing section [{sec}] (ArrayHeight, ArrayWidth, IfmapSramSzkB, FilterSramSzkB, "
                         "OfmapSramSzkB, Dataflow)")

    def get(key: str, section: str = sec) -> str:
        if not cp.has_option(section, key):
            raise ValueError(f"{path}: field '{key}' is missing from section [{section}]")
        return cp.get(section, key).strip()

    def integer(key: str) -> int:
        text = get(key)
        try:
            v = int(text)
        except ValueError:
            v = 0
        if not 0 < v <= _CFG_MAX_INT:
            limit = f" (at most {_CFG_MAX_INT})" if v > _CFG_MAX_INT else ""
            raise ValueError(f"{path}: field '{key}' must be a positive integer, got {_show(text)}{limit}")
        return v

    rows, cols = integer("ArrayHeight"), integer("ArrayWidth")
    kb = {k: integer(f"{k}SramSzkB") for k in ("Ifmap", "Filter", "Ofmap")}
    dataflow = get("Dataflow")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"{path}: field 'Dataflow' must be ws, os or is, got {_show(dataflow)}")
    mode = cp.get("run_presets", "InterfaceBandwidth", fallback="CALC").strip()
    clock = 1e9
    if mode == "USER":
        text = get("Bandwidth")
        try:
            words = min(float(x) for x in text.split(","))
        except ValueError:
            words = math.nan
        # zero would divide by zero in the simulator and a negative one give negative cycles
        if not (words > 0 and math.isfinite(words * clock)):
            raise ValueError(f"{path}: field 'Bandwidth' must be a positive finite number of words per cycle "
                             f"(e.g. 10; a list such as 10,20 takes the smallest), got {_show(text)}")
        dram = words * clock
        dram_src = f"{_CFG_SOURCE}: Bandwidth {text} words/cycle (USER mode), 1-byte words"
    elif mode == "CALC":
        dram, dram_src = None, f"{_CFG_SOURCE}: CALC mode, bandwidth not a limit (SCALE-Sim reports no stalls)"
    else:
        raise ValueError(f"{path}: field 'InterfaceBandwidth' must be CALC or USER, got {_show(mode)}")
    sources = {"rows": f"{_CFG_SOURCE}: ArrayHeight", "cols": f"{_CFG_SOURCE}: ArrayWidth",
               "dataflow": f"{_CFG_SOURCE}: Dataflow", "dram_bandwidth_bytes_per_s": dram_src,
               "word_bits": "SCALE-Sim convention: 1-byte words",
               "clock_hz": "assumption: a SCALE-Sim config has no clock; 1 GHz",
               "vector_lanes": "assumption: SCALE-Sim has no vector unit; one lane per array column",
               "psum_to_dram": "SCALE-Sim convention: every reduction fold's partial sums go to DRAM",
               "index_bits": _DEFAULT_INDEX, "links": "default: 1 (SCALE-Sim models one chip)"}
    for k in kb:
        sources[f"{k.lower()}_sram_bytes"] = f"{_CFG_SOURCE}: {k}SramSzkB x 1024"
    sparse = cp.get("sparsity", "SparsitySupport", fallback="false").strip().lower() == "true"
    sources["sparsity"] = f"{_CFG_SOURCE}: SparsitySupport {'true (N:M)' if sparse else 'false'}"
    r = Reader(str(path))
    energy = read_energy(r, None)
    sources.update(r.sources)
    return Arch(name=path.stem, description=f"SCALE-Sim config {path.name}", rows=rows, cols=cols,
                dataflow=dataflow, ifmap_sram_bytes=kb["Ifmap"] * 1024, filter_sram_bytes=kb["Filter"] * 1024,
                ofmap_sram_bytes=kb["Ofmap"] * 1024, word_bits=8, dram_bandwidth_bytes_per_s=dram, clock_hz=clock,
                vector_lanes=cols, energy=energy, psum_to_dram=True, sparsity=("nm",) if sparse else (),
                sources=sources, path=str(path))
