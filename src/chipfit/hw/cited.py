"""Cited YAML: every number written ``{value: 92e12, source: "Jouppi et al., ISCA 2017: ..."}``, read and checked.

An assumption says so in its source (``source: "assumption: ..."``). A bad file raises ``ValueError`` naming the
file, the field path (``peak_ops_per_s.fp16.value``, ``array.rows.value``) and the expected type; no YAML
traceback reaches the user. The chip profiles (:mod:`chipfit.hw.chip`) and the simulator's arrays
(:mod:`chipfit.hw.sim.arch`) are read with this module; energies a file leaves out are the Horowitz 45 nm defaults
(:data:`HOROWITZ_45NM`), each with its source.

Conventions: bytes are bytes (not bits); energies are picojoules.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DTYPES = ("fp32", "fp16", "bf16", "int16", "int8", "int4")
# Energy tables may also price int32 (the accumulator width of integer MACs in Horowitz's table).
ENERGY_DTYPES = (*DTYPES, "int32")
ENERGY_FIELDS = ("mac_pj", "add_pj", "sram_pj_per_byte", "dram_pj_per_byte")
ENERGY_FORM = "a mapping with any of mac_pj, add_pj, sram_pj_per_byte, dram_pj_per_byte"
DEFAULT = "default: not given in the profile"


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


def _show(v: Any) -> str:
    """A value as a message shows it: its repr, cut to 60 characters."""
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(key: Any) -> str:
    """A mapping key as a message names it, cut to 40 characters (a broken file can make a whole line a key)."""
    text = str(key)
    return text if len(text) <= 40 else text[:37] + "..."


def hint(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Reader:
    """Reads one file (or one section of it), collecting the sources; every error names the file and field path.

    Args:
        where: what error messages name (the file).
        prefix: the section's path in the file (``array.``): error messages name ``array.rows.value``, while
            :attr:`sources` keys stay relative to the section (``rows``).
    """

    def __init__(self, where: str, prefix: str = ""):
        self.where = where
        self.prefix = prefix
        self.sources: dict[str, str] = {}

    def error(self, path: str, expected: str, got: Any = ...) -> ValueError:
        got_s = "" if got is ... else f", got {type(got).__name__} {_show(got)}"
        return ValueError(f"{self.where}: field '{self.prefix}{path}' must be {expected}{got_s}")

    def check_fields(self, data: Mapping[Any, Any], fields: Mapping[str, tuple[bool, str]]) -> None:
        """Reject unknown keys (with the closest known one) and missing required ones (with their form).

        Args:
            data: the mapping read from the file.
            fields: field -> (required, expected form).
        """
        for key in data:
            if key not in fields:
                raise ValueError(f"{self.where}: unknown field '{self.prefix}{_key(key)}'"
                                 f"{hint(str(key), list(fields))}; fields are {', '.join(fields)}")
        for key, (required, expected) in fields.items():
            if required and key not in data:
                raise ValueError(f"{self.where}: missing required field '{self.prefix}{key}': it must be {expected}")

    def cited(self, path: str, raw: Any, what: str) -> tuple[Any, str]:
        """The (value, source) of a ``{value, source}`` mapping, checking its shape and its source."""
        full = self.prefix + path
        if not isinstance(raw, dict):
            if isinstance(raw, (int, float, str, bool)):
                shown = str(raw).lower() if isinstance(raw, bool) else _show(raw).strip("'\"")
                raise ValueError(
                    f"{self.where}: field '{full}' is a bare value ({_show(raw)}) without a source; it must be "
                    f"{{value: {what}, source: <text>}}: add where it comes from, e.g. "
                    f"{full.rsplit('.', 1)[-1]}: {{value: {shown}, source: \"assumption: why\"}}")
            raise self.error(path, f"{{value: {what}, source: <text>}}", raw)
        unknown = [_key(k) for k in raw if k not in ("value", "source")]
        if unknown:
            raise ValueError(f"{self.where}: field '{full}' has unknown key {unknown[0]!r}"
                             f"{hint(unknown[0], ('value', 'source'))}; it must be "
                             f"{{value: {what}, source: <text>}}")
        if "value" not in raw:
            raise ValueError(f"{self.where}: field '{full}.value' is missing; it must be {what}")
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
        if isinstance(v, int) and abs(v) > sys.float_info.max:  # YAML reads 1 followed by 400 zeros as an int
            raise self.error(f"{path}.value", f"{what}, finite (at most {sys.float_info.max:.3g})", v)
        if not math.isfinite(v):
            raise self.error(f"{path}.value", f"{what}, finite", v)
        if (positive and v <= 0) or v < 0 or (at_most is not None and v > at_most):
            raise self.error(f"{path}.value", what, v)
        self.sources[path] = src
        return float(v)

    def integer(self, path: str, raw: Any) -> int:
        """A cited positive integer."""
        v = self.number(path, raw)
        assert v is not None
        if v != int(v):
            raise self.error(f"{path}.value", "a positive integer", v)
        return int(v)

    def flag(self, path: str, raw: Any, default: bool) -> bool:
        """A cited true/false; ``default`` (with a default source) when the field is absent."""
        if raw is None:
            self.sources[path] = DEFAULT
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
                raise ValueError(f"{self.where}: field '{self.prefix}{path}' has unknown dtype {_key(d)!r}"
                                 f"{hint(str(d), allowed)}; dtypes are {', '.join(allowed)}")
            out[d] = self.number(f"{path}.{d}", v)
        return out


def read_energy(r: Reader, raw: Any, base: EnergyTable = HOROWITZ_45NM,
                base_sources: Mapping[str, str] | None = HOROWITZ_SOURCES) -> EnergyTable:
    """An ``energy:`` mapping's entries over ``base``, each recorded in ``r.sources`` as ``energy.<entry>``.

    Args:
        r: the reader of the file or section holding the mapping.
        raw: the mapping (``None``: all of ``base``).
        base: the table the entries override (the Horowitz defaults, or a chip's own table for its array).
        base_sources: sources to record for the base entries (``None``: ``r.sources`` already holds them).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise r.error("energy", ENERGY_FORM, raw)
    for key in raw:
        if key not in ENERGY_FIELDS:
            raise ValueError(f"{r.where}: field '{r.prefix}energy' has unknown key {_key(key)!r}"
                             f"{hint(str(key), ENERGY_FIELDS)}; keys are {', '.join(ENERGY_FIELDS)}")
    for k, src in (base_sources or {}).items():
        r.sources[f"energy.{k}"] = src
    mac = dict(base.mac_pj)
    add = dict(base.add_pj)
    if "mac_pj" in raw:
        mac.update(r.dtype_map("energy.mac_pj", raw["mac_pj"], ENERGY_DTYPES, "<pJ>"))
    if "add_pj" in raw:
        add.update(r.dtype_map("energy.add_pj", raw["add_pj"], ENERGY_DTYPES, "<pJ>"))
    sram = base.sram_pj_per_byte
    dram = base.dram_pj_per_byte
    if "sram_pj_per_byte" in raw:
        sram = r.number("energy.sram_pj_per_byte", raw["sram_pj_per_byte"])
    if "dram_pj_per_byte" in raw:
        dram = r.number("energy.dram_pj_per_byte", raw["dram_pj_per_byte"])
    assert sram is not None and dram is not None
    return EnergyTable(mac_pj=mac, add_pj=add, sram_pj_per_byte=sram, dram_pj_per_byte=dram)


# --- the strict YAML loader ----------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            hash(key)
        except TypeError:  # a list or mapping as a key ("? [a, b]")
            raise yaml.constructor.ConstructorError(None, None, f"a {type(key).__name__} cannot be a key",
                                                    key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: Path, what: str = "chip profile") -> Any:
    """A YAML file's contents, rejecting duplicate keys; ``ValueError`` naming the file (and line) otherwise.

    Args:
        path: the file.
        what: what the file is, for the message when it cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the {what}: {e}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.reader.ReaderError as e:  # a character YAML forbids (a NUL, a control code): no mark, a position
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        char = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
        raise ValueError(f"{path}: not valid YAML (line {line}, column {column}): character {char} is not "
                         "allowed") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        problem = " ".join(problem.split())  # one line: PyYAML's problems may span several
        raise ValueError(f"{path}: not valid YAML{at}: {problem[:200]}") from None
    except RecursionError:  # brackets nested thousands deep
        raise ValueError(f"{path}: not valid YAML: nested too deeply to read") from None
