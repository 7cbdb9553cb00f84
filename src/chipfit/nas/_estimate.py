"""What :mod:`chipfit.nas.latency` and :mod:`chipfit.nas.table` share, kept below both so that neither imports the
other to reach it: budgets as text (:func:`parse_latency`, :func:`parse_energy`, :func:`format_latency`,
:func:`format_energy`), :class:`Target`, a network counted once (``_Counts``) and a target made ready to estimate
(``_Resolved``). The public names are re-exported by :mod:`chipfit.nas.latency`, the place to import them from.
Units: seconds and joules.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chipfit.cost.records import Precision
from chipfit.hw.estimate import SOURCES, Estimate

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from chipfit.cost import Profile
    from chipfit.hw import Chip

RUNTIMES = ("ort", "openvino")
# A search measures many candidates: one fresh process, 3 warm-up and 10 timed runs each, not the benchmark
# protocol of chipfit measure (3 processes x 30 runs). Figures to report come from `chipfit measure`.
MEASURE_PROCESSES, MEASURE_WARMUP, MEASURE_REPEATS = 1, 3, 10

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
LATENCY_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
ENERGY_UNITS = {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "nJ": 1e-9}


# --- budgets as text --------------------------------------------------------------------------------------------------


def _parse(text: Any, units: Mapping[str, float], what: str, example: str) -> float:
    accepted = ", ".join(units)
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        raise ValueError(f"{what} {text!r} has no unit: write it as text with one, e.g. {example!r}; units: "
                         f"{accepted}")
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a text such as {example!r}, got {type(text).__name__}; units: {accepted}")
    m = re.fullmatch(rf"\s*({_NUMBER})\s*(\S*)\s*", text)
    if m is None:
        raise ValueError(f"{what} {text!r} is not a number with a unit such as {example!r}; units: {accepted}")
    number, unit = m.groups()
    if not unit:
        raise ValueError(f"{what} {text!r} has no unit: write it with one, e.g. {example!r}; units: {accepted}")
    if unit not in units:
        raise ValueError(f"{what} {text!r}: unknown unit {unit!r}; units: {accepted}")
    value = float(number) * units[unit]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} {text!r} must be a finite number > 0; units: {accepted}")
    return value


def parse_latency(text: str) -> float:
    """``"0.4ms"``, ``"2 ms"``, ``"300us"``, ``"1.5s"``, ``"3e-3s"`` -> seconds. A bare number is refused: give a
    unit (``s``, ``ms``, ``us`` or ``µs``, ``ns``).

    Raises:
        ValueError: no unit, an unknown unit, not a number, or not > 0; the message names the text and the units.
    """
    return _parse(text, LATENCY_UNITS, "latency", "0.4ms")


def parse_energy(text: str) -> float:
    """``"2mJ"``, ``"500uJ"``, ``"1J"`` -> joules (units ``J``, ``mJ``, ``uJ`` or ``µJ``, ``nJ``).

    Raises:
        ValueError: no unit, an unknown unit, not a number, or not > 0; the message names the text and the units.
    """
    return _parse(text, ENERGY_UNITS, "energy", "2mJ")


def _format(value: float, units: Sequence[tuple[str, float]]) -> str:
    for unit, scale in units:
        if abs(value) >= scale:
            return f"{value / scale:.12g}{unit}"
    unit, scale = units[-1]
    return f"{value / scale:.12g}{unit}"


def format_latency(seconds: float) -> str:
    """Seconds as the text :func:`parse_latency` reads back (``0.0004`` -> ``"400us"``)."""
    return _format(seconds, (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)))


def format_energy(joules: float) -> str:
    """Joules as the text :func:`parse_energy` reads back (``0.002`` -> ``"2mJ"``)."""
    return _format(joules, (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)))


# --- targets ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a searched network should run, how its time is found, and what it may cost.

    Attributes:
        hw: a chip name (``chipfit hw list``) or a chip YAML file (or a SCALE-Sim ``.cfg``); ``host`` is this
            machine.
        source: ``roofline``, ``simulator`` (chips with an ``array`` section), ``measured`` (ONNX Runtime on this
            machine, ``hw="host"`` only) or ``predicted`` (a predictor folder built on this machine).
        latency_budget_s: the most seconds one inference may take, or ``None``.
        energy_budget_j: the most joules one inference may take, or ``None`` (roofline and simulator only: the
            other sources give no energy).
        precision: ``fp32``, ``int8``, ``w4a8``, ...; ``None``: fp32, or the chip's fastest dtype on a chip without
            fp32 arithmetic (as ``chipfit.profile`` picks it; the simulator follows the same rule). Measured and
            predicted run the float ONNX file: fp32 only.
        predictor: the folder of a predictor (``chipfit predictor build --out DIR``); required for ``predicted``.
        runtime: ``ort`` or ``openvino``: what ``measured`` runs on (a ``predicted`` target's predictor must have
            been built for it).
        fused: estimate fused execution (conv + BN + activation + add as one kernel); roofline and simulator (a
            runtime fuses as it chooses).
    """

    hw: str
    source: str = "roofline"
    latency_budget_s: float | None = None
    energy_budget_j: float | None = None
    precision: str | None = None
    predictor: str | None = None
    runtime: str = "ort"
    fused: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.hw, Path):
            object.__setattr__(self, "hw", str(self.hw))
        if isinstance(self.predictor, Path):
            object.__setattr__(self, "predictor", str(self.predictor))
        if not isinstance(self.hw, str) or not self.hw.strip():
            raise ValueError(f"target hw must be a chip name (chipfit hw list) or a chip YAML file, got {self.hw!r}")
        if self.source not in SOURCES:
            raise ValueError(f"target {self.hw}: source {self.source!r} is not one of {', '.join(SOURCES)}")
        for name in ("latency_budget_s", "energy_budget_j"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v <= 0):
                raise ValueError(f"target {self.hw}: {name} must be a number > 0 or None, got {v!r} (for text such as "
                                 f"'2ms' or '1mJ' use parse_latency / parse_energy, or Target.from_dict)")
        if self.precision is not None:
            try:
                Precision.parse(self.precision)
            except ValueError as e:
                raise ValueError(f"target {self.hw}: {e}") from None
        if self.runtime not in RUNTIMES:
            raise ValueError(f"target {self.hw}: runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")
        if not isinstance(self.fused, bool):
            raise ValueError(f"target {self.hw}: fused must be true or false, got {self.fused!r}")
        if self.source == "predicted" and not self.predictor:
            raise ValueError(f"target {self.hw}: source 'predicted' needs a predictor: give predictor=DIR, a folder "
                             "written by `chipfit predictor build --out DIR`")
        if self.source != "predicted" and self.predictor is not None:
            raise ValueError(f"target {self.hw}: a predictor is used by source 'predicted' only (source is "
                             f"{self.source!r}); drop it or set source='predicted'")
        if self.source == "measured" and self.hw != "host":
            raise ValueError(f"target {self.hw}: measured latency runs on this machine only: use hw='host', or "
                             f"source 'roofline' or 'simulator' to estimate {self.hw}")
        if self.source in ("measured", "predicted"):
            if self.energy_budget_j is not None:
                raise ValueError(f"target {self.hw}: source {self.source!r} gives no energy, so it cannot check an "
                                 "energy budget; use a roofline or simulator target for energy")
            if self.precision is not None and Precision.parse(self.precision).name != "fp32":
                raise ValueError(f"target {self.hw}: source {self.source!r} runs the float ONNX file: precision "
                                 f"fp32 (or None), not {self.precision!r}")
            if not self.fused:
                raise ValueError(f"target {self.hw}: source {self.source!r} fuses layers as the runtime chooses; "
                                 "fused=False applies to roofline and simulator targets")

    def label(self) -> str:
        """``edge-npu/simulator``, ``cortex-a76/roofline/int8/unfused``: the key of this target's estimates (the
        precision when given, ``unfused`` when not fused, the runtime when not ``ort``)."""
        name = Path(self.hw).stem if self.hw.endswith((".yaml", ".yml", ".cfg")) else self.hw
        parts = [name, self.source]
        if self.precision is not None:
            parts.append(Precision.parse(self.precision).name)
        if not self.fused:
            parts.append("unfused")
        if self.source in ("measured", "predicted") and self.runtime != "ort":
            parts.append(self.runtime)
        return "/".join(parts)

    def fits(self, estimate: Estimate) -> bool:
        """Whether ``estimate`` keeps within this target's budgets (no budget: always)."""
        if self.latency_budget_s is not None and estimate.latency_s > self.latency_budget_s:
            return False
        if self.energy_budget_j is not None:
            if estimate.energy_j is None:
                raise ValueError(f"target {self.label()}: the estimate has no energy to check the energy budget")
            return estimate.energy_j <= self.energy_budget_j
        return True

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Target:
        """Inverse of :meth:`to_dict`; the budgets may also be text (``"2ms"``, ``"1mJ"``)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a target must be a mapping (JSON object), got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"target: unknown field(s) {unknown}; fields: {sorted(names)}")
        if "hw" not in d:
            raise ValueError("target: field 'hw' is required (a chip name or a chip YAML file)")
        d = dict(d)
        if isinstance(d.get("latency_budget_s"), str):
            d["latency_budget_s"] = parse_latency(d["latency_budget_s"])
        if isinstance(d.get("energy_budget_j"), str):
            d["energy_budget_j"] = parse_energy(d["energy_budget_j"])
        return cls(**d)


# --- a network counted once; a target made ready (chip loaded, precision picked, predictor read) ----------------------


class _Counts:
    """One network's op graph, captured once, costed at each precision asked for (the cost stage's own engine).

    ``keep_inputs`` / ``keep_outputs`` say whether the graph's inputs and outputs are the network's: a part of a
    network reads and writes intermediate activations, and the roofline model sends only the network's boundary
    tensors through DRAM unconditionally (an intermediate one only when it does not fit on chip).
    """

    def __init__(self, module: nn.Module, input_shape: tuple[int, ...], name: str, *, keep_inputs: bool = True,
                 keep_outputs: bool = True):
        from chipfit.cost import capture_torch

        self.module, self.input_shape, self.name = module, input_shape, name
        graph = capture_torch(module, input_shape=input_shape, name=name)
        # Fusion stops at a graph output too: an in-place activation closing a part would not join its conv.
        self.graph = graph if keep_inputs and keep_outputs else dataclasses.replace(
            graph, inputs=graph.inputs if keep_inputs else [], outputs=graph.outputs if keep_outputs else [])
        self._profiles: dict[str, Profile] = {}

    def profile(self, precision: str) -> Profile:
        from chipfit.cost import analyze

        if precision not in self._profiles:
            self._profiles[precision] = analyze(self.graph, precision, fused=True)
        return self._profiles[precision]


class _Resolved:
    """A :class:`Target` made ready to estimate: checked against its chip, predictor or runtime once."""

    def __init__(self, target: Target, *, measure_repeats: int = MEASURE_REPEATS):
        self.target, self.label = target, target.label()
        self.chip: Chip | None = None
        self.predictor: Any = None
        self.measure_repeats = measure_repeats
        self.precision = "fp32"
        try:
            self._resolve()
        except ValueError as e:
            raise ValueError(f"target {self.label}: {e}") from None

    def _resolve(self) -> None:
        t = self.target
        if t.source in ("roofline", "simulator"):
            from chipfit.hw import load_chip

            self.chip = load_chip(t.hw)
            default = "fp32" if "fp32" in self.chip.peak_ops_per_s else self.chip.best_dtype()
            self.precision = Precision.parse(t.precision or default).name
            if t.source == "roofline":
                self.chip.peak(Precision.parse(self.precision).compute)  # names the dtypes the chip has
            else:
                from chipfit.hw.sim import sim_precision
                from chipfit.hw.sim.arch import load_arch

                load_arch(self.chip)  # a chip without an array says which chips have one
                sim_precision(self.precision)
        elif t.source == "predicted":
            from chipfit.deploy import Predictor

            self.predictor = Predictor.load(t.predictor)
            built = self.predictor.manifest.get("environment", {}).get("runtime", "ort")
            if built != t.runtime:
                raise ValueError(f"the predictor in {t.predictor} was built for runtime {built!r}, not {t.runtime!r}")
        elif not isinstance(self.measure_repeats, int) or self.measure_repeats < 1:
            raise ValueError(f"measure_repeats must be a whole number >= 1, got {self.measure_repeats!r}")

    @property
    def offset_s(self) -> float:
        """What the source adds once per network whatever its size (the predictor's fitted offset)."""
        return float(self.predictor.offset_s) if self.predictor is not None else 0.0

    def estimate(self, counts: _Counts) -> Estimate:
        t = self.target
        if t.source == "roofline":
            from chipfit.hw import roofline

            return roofline.estimate(counts.profile(self.precision), self.chip, fused=t.fused)
        if t.source == "simulator":
            from chipfit.hw.sim import simulate

            return simulate(counts.profile(self.precision), self.chip, precision=self.precision,
                            fused=t.fused).estimate()
        if t.source == "predicted":
            return self.predictor.predict(counts.profile("fp32")).estimate(t.hw, counts.name)
        from chipfit.deploy import export_float, measure

        with tempfile.TemporaryDirectory(prefix="chipfit-nas-") as tmp:
            path = export_float(counts.module, Path(tmp) / "model.onnx", counts.input_shape)
            m = measure(path, runtime=t.runtime, input_shape=counts.input_shape, threads=1,
                        processes=MEASURE_PROCESSES, repeats=self.measure_repeats, warmup=MEASURE_WARMUP)
        return m.estimate("host", counts.name)
