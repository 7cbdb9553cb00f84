"""Accelerator architectures for the simulator: cited YAML files, or SCALE-Sim ``.cfg`` files.

A YAML architecture cites every number as the chip profiles do (``{value: 256, source: "Jouppi et al., ISCA 2017:
..."}``; an assumption says so in its source) and is validated by the same reader (:class:`chipfit.hw.chip._Reader`):
a bad file raises ``ValueError`` naming the file and the field. Energies left out take the Horowitz 45 nm defaults
(:data:`chipfit.hw.chip.HOROWITZ_45NM`).

A SCALE-Sim ``.cfg`` (``[architecture_presets]`` ArrayHeight, ArrayWidth, IfmapSramSzkB, FilterSramSzkB,
OfmapSramSzkB, Dataflow; ``[run_presets]`` InterfaceBandwidth and, in USER mode, Bandwidth in words per cycle) loads
with SCALE-Sim's conventions: 1-byte words, 1 kB = 1024 bytes, unlimited DRAM bandwidth in CALC mode (SCALE-Sim
reports no stalls there), partial sums of every reduction fold written to DRAM, and a 1 GHz clock (the .cfg has none).

Built-in architectures live in ``chipfit/hw/archs/``; :func:`list_archs` names them.
"""

from __future__ import annotations

import configparser
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipfit.hw.chip import EnergyTable, _energy, _read, _Reader

DATAFLOWS = ("ws", "os", "is")
SPARSITY_KINDS = ("nm", "unstructured")
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "archs"
_SUFFIXES = (".yaml", ".yml")

# field -> (required, expected form)
_FIELDS: dict[str, tuple[bool, str]] = {
    "name": (True, "a non-empty string"),
    "description": (False, "a string"),
    "rows": (True, "{value: <PE rows, an integer>, source: <text>}"),
    "cols": (True, "{value: <PE columns, an integer>, source: <text>}"),
    "dataflow": (True, "{value: ws, os or is, source: <text>}"),
    "ifmap_sram_bytes": (True, "{value: <bytes>, source: <text>}"),
    "filter_sram_bytes": (True, "{value: <bytes>, source: <text>}"),
    "ofmap_sram_bytes": (True, "{value: <bytes>, source: <text>}"),
    "word_bits": (True, "{value: <bits of one MAC operand, e.g. 8>, source: <text>}"),
    "dram_bandwidth_bytes_per_s": (True, "{value: <bytes/s>, source: <text>}, or null for unlimited"),
    "clock_hz": (True, "{value: <Hz>, source: <text>}"),
    "vector_lanes": (True, "{value: <operations per cycle of the vector unit>, source: <text>}"),
    "sparsity": (False, "{value: [nm, unstructured] (any of them, or []), source: <text>}"),
    "index_bits": (False, "{value: <bits of one sparse-weight index>, source: <text>}"),
    "link_bandwidth_bytes_per_s": (False, "{value: <bytes/s of one chip-to-chip link>, source: <text>} or null"),
    "links": (False, "{value: <links per chip>, source: <text>}"),
    "psum_to_dram": (False, "{value: true or false, source: <text>}"),
    "energy": (False, "a mapping with any of mac_pj, add_pj, sram_pj_per_byte, dram_pj_per_byte"),
    "notes": (False, "a string"),
}


@dataclass(frozen=True)
class Arch:
    """A systolic-array accelerator.

    Attributes:
        name: architecture name.
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
        sources: field -> citation, for every number (defaults included).
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


# --- YAML --------------------------------------------------------------------------------------------------------


def _integer(r: _Reader, key: str, raw: Any) -> int:
    v = r.number(key, raw)
    assert v is not None
    if v != int(v):
        raise r.error(f"{key}.value", "a positive integer", v)
    return int(v)


def parse_arch(data: Any, where: str = "<arch>", *, path: str | None = None) -> Arch:
    """Validate a loaded YAML mapping into an :class:`Arch`; ``ValueError`` names ``where`` and the field."""
    r = _Reader(where)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: an architecture must be a YAML mapping of fields "
                         f"({', '.join(k for k, (req, _) in _FIELDS.items() if req)} are required)")
    for key in data:
        if key not in _FIELDS:
            close = difflib.get_close_matches(str(key), list(_FIELDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown field {key!r}{hint}; fields are {', '.join(_FIELDS)}")
    for key, (required, expected) in _FIELDS.items():
        if required and key not in data:
            raise ValueError(f"{where}: missing required field '{key}': it must be {expected}")
    name = r.text("name", data["name"], required=True)
    ints = {k: _integer(r, k, data[k]) for k in ("rows", "cols", "ifmap_sram_bytes", "filter_sram_bytes",
                                                  "ofmap_sram_bytes", "word_bits", "vector_lanes")}
    dataflow, src = r.cited("dataflow", data["dataflow"], "ws, os or is")
    if dataflow not in DATAFLOWS:
        raise r.error("dataflow.value", "ws, os or is", dataflow)
    r.sources["dataflow"] = src
    dram = r.number("dram_bandwidth_bytes_per_s", data["dram_bandwidth_bytes_per_s"], nullable=True)
    if dram is None:
        r.sources["dram_bandwidth_bytes_per_s"] = "unlimited (null in the file)"
    clock = r.number("clock_hz", data["clock_hz"])
    sparsity: tuple[str, ...] = ()
    if "sparsity" in data:
        value, src = r.cited("sparsity", data["sparsity"], "[nm, unstructured]")
        if not isinstance(value, list) or any(v not in SPARSITY_KINDS for v in value):
            raise r.error("sparsity.value", f"a list of {', '.join(SPARSITY_KINDS)} (or [])", value)
        sparsity, r.sources["sparsity"] = tuple(value), src
    else:
        r.sources["sparsity"] = "default: dense only"
    index_bits = _integer(r, "index_bits", data["index_bits"]) if "index_bits" in data else 4
    r.sources.setdefault("index_bits", "default: 4-bit step index (Cambricon-X style)")
    link = r.number("link_bandwidth_bytes_per_s", data.get("link_bandwidth_bytes_per_s"), nullable=True)
    links = _integer(r, "links", data["links"]) if "links" in data else 1
    r.sources.setdefault("links", "default: 1")
    psum = r.flag("psum_to_dram", data.get("psum_to_dram"), False)
    energy = _energy(r, data.get("energy"))
    assert clock is not None
    return Arch(name=name, description=r.text("description", data.get("description")), dataflow=dataflow,
                dram_bandwidth_bytes_per_s=dram, clock_hz=clock, energy=energy, sparsity=sparsity,
                index_bits=index_bits, link_bandwidth_bytes_per_s=link, links=links, psum_to_dram=psum,
                sources=r.sources, path=path, notes=r.text("notes", data.get("notes")), **ints)


# --- SCALE-Sim .cfg ----------------------------------------------------------------------------------------------

_CFG_SOURCE = "SCALE-Sim config"


def parse_scalesim_cfg(path: str | Path) -> Arch:
    """An :class:`Arch` from a SCALE-Sim ``.cfg`` file, with SCALE-Sim's conventions (see the module docstring)."""
    path = Path(path)
    cp = configparser.ConfigParser()
    try:
        cp.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise ValueError(f"{path}: cannot read the SCALE-Sim config: {e}") from None
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
            raise ValueError(f"{path}: field '{key}' must be a positive integer, got {text!r}") from None
        if v <= 0:
            raise ValueError(f"{path}: field '{key}' must be a positive integer, got {v}")
        return v

    rows, cols = integer("ArrayHeight"), integer("ArrayWidth")
    kb = {k: integer(f"{k}SramSzkB") for k in ("Ifmap", "Filter", "Ofmap")}
    dataflow = get("Dataflow")
    if dataflow not in DATAFLOWS:
        raise ValueError(f"{path}: field 'Dataflow' must be ws, os or is, got {dataflow!r}")
    mode = cp.get("run_presets", "InterfaceBandwidth", fallback="CALC").strip()
    clock = 1e9
    if mode == "USER":
        text = get("Bandwidth")
        try:
            words = min(float(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"{path}: field 'Bandwidth' must be words per cycle (e.g. 10), got {text!r}") from None
        dram = words * clock
        dram_src = f"{_CFG_SOURCE}: Bandwidth {text} words/cycle (USER mode), 1-byte words"
    elif mode == "CALC":
        dram, dram_src = None, f"{_CFG_SOURCE}: CALC mode, bandwidth not a limit (SCALE-Sim reports no stalls)"
    else:
        raise ValueError(f"{path}: field 'InterfaceBandwidth' must be CALC or USER, got {mode!r}")
    sources = {"rows": f"{_CFG_SOURCE}: ArrayHeight", "cols": f"{_CFG_SOURCE}: ArrayWidth",
               "dataflow": f"{_CFG_SOURCE}: Dataflow", "dram_bandwidth_bytes_per_s": dram_src,
               "word_bits": "SCALE-Sim convention: 1-byte words",
               "clock_hz": "assumption: a SCALE-Sim config has no clock; 1 GHz",
               "vector_lanes": "assumption: SCALE-Sim has no vector unit; one lane per array column",
               "psum_to_dram": "SCALE-Sim convention: every reduction fold's partial sums go to DRAM"}
    for k in kb:
        sources[f"{k.lower()}_sram_bytes"] = f"{_CFG_SOURCE}: {k}SramSzkB x 1024"
    sparse = cp.get("sparsity", "SparsitySupport", fallback="false").strip().lower() == "true"
    sources["sparsity"] = f"{_CFG_SOURCE}: SparsitySupport {'true (N:M)' if sparse else 'false'}"
    r = _Reader(str(path))
    energy = _energy(r, None)
    sources.update(r.sources)
    return Arch(name=path.stem, description=f"SCALE-Sim config {path.name}", rows=rows, cols=cols,
                dataflow=dataflow, ifmap_sram_bytes=kb["Ifmap"] * 1024, filter_sram_bytes=kb["Filter"] * 1024,
                ofmap_sram_bytes=kb["Ofmap"] * 1024, word_bits=8, dram_bandwidth_bytes_per_s=dram, clock_hz=clock,
                vector_lanes=cols, energy=energy, psum_to_dram=True, sparsity=("nm",) if sparse else (),
                sources=sources, path=str(path))


# --- finding and loading -----------------------------------------------------------------------------------------


def _index() -> dict[str, Path]:
    if not BUILTIN_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(BUILTIN_DIR.iterdir()) if p.suffix in _SUFFIXES}


def list_archs() -> list[str]:
    """Names of the built-in architectures."""
    return sorted(_index())


def load_arch(name_or_path: str | Path | Arch) -> Arch:
    """An architecture by built-in name, from a YAML file, or from a SCALE-Sim ``.cfg`` file.

    Raises:
        ValueError: unknown name (with close names), missing file, or a file that fails validation (naming the
            file and the field).
    """
    if isinstance(name_or_path, Arch):
        return name_or_path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith(".cfg"):
        if not path.is_file():
            raise ValueError(f"SCALE-Sim config {text}: no such file")
        return parse_scalesim_cfg(path)
    if isinstance(name_or_path, Path) or text.endswith(_SUFFIXES) or path.is_file():
        if not path.is_file():
            raise ValueError(f"architecture file {text}: no such file")
        return parse_arch(_read(path), str(path), path=str(path))
    index = _index()
    if text not in index:
        close = difflib.get_close_matches(text, list(index), n=3, cutoff=0.4)
        raise ValueError(f"unknown architecture {text!r}." + (f" Did you mean: {', '.join(close)}?" if close else "")
                         + f" Built-in: {', '.join(index)}; a YAML file or a SCALE-Sim .cfg works too.")
    arch = parse_arch(_read(index[text]), str(index[text]), path=str(index[text]))
    if arch.name != text:
        raise ValueError(f"{index[text]}: field 'name' is {arch.name!r} but the file is named {index[text].name}")
    return arch
