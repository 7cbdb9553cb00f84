"""What the non-systolic engines share: their records (:class:`EngineLayer`, :class:`EngineResult`), the
:class:`Engine` protocol and the layer checks and helpers. The registry is :mod:`chipfit.hw.sim.engines`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from chipfit.hw.sim.workload import KINDS, SimLayer

UNITS = ("crossbar", "xnor", "int8", "vector")
_SIZES = ("batch", "in_h", "in_w", "in_c", "out_h", "out_w", "filt_h", "filt_w", "num_filters", "groups", "m", "k",
          "n", "vector_ops", "in_elems", "out_elems", "weight_elems", "fused_ops", "fused_reads")


# --- what the engines share about a layer -------------------------------------------------------------------------


def check_layers(layers: Sequence[SimLayer]) -> list[SimLayer]:
    """The layers as a list, after checking each is a :class:`SimLayer` of a known kind with non-negative sizes.

    Raises:
        ValueError: an empty list, a non-layer, an unknown kind or a negative (or, for an array layer, zero) size.
    """
    if isinstance(layers, SimLayer) or not isinstance(layers, Sequence) or not layers:
        raise ValueError("give a non-empty list of SimLayer (layers_from_profile(count(model, shape)) builds one)")
    for x in layers:
        if not isinstance(x, SimLayer):
            raise ValueError(f"layers must all be SimLayer, not {type(x).__name__}: build them with SimLayer(...) or "
                             "layers_from_profile")
        if x.kind not in KINDS:
            raise ValueError(f"layer {x.name!r}: unknown kind {x.kind!r}; use one of {', '.join(KINDS)}")
        for f in _SIZES:
            if getattr(x, f) < 0:
                raise ValueError(f"layer {x.name!r}: {f} = {getattr(x, f)} is negative; sizes count elements, give "
                                 "0 or more")
        if x.on_array and (x.batch < 1 or x.groups < 1 or min(x.gemm()) < 1):
            raise ValueError(f"layer {x.name!r}: an array layer needs batch, groups and its product (groups, M, K, "
                             f"N) = {x.gemm()} all at least 1; give out_h/out_w/in_c/num_filters (conv) or m/k/n "
                             "(gemm)")
        if x.on_array and x.kind != "gemm" and (x.in_c % x.groups or x.num_filters % x.groups):
            raise ValueError(f"layer {x.name!r}: in_c {x.in_c} and num_filters {x.num_filters} must be multiples "
                             f"of groups {x.groups}")
    return list(layers)


def has_weights(layer: SimLayer) -> bool:
    """Whether an array layer multiplies by stored weights; attention's two products (``.qk``, ``.pv``) multiply
    activations by activations, which no weight-stationary memory can hold."""
    return layer.on_array and not layer.name.endswith((".qk", ".pv"))


def act_elems(layer: SimLayer) -> tuple[int, int]:
    """(input, output) activation elements of one run: the unpadded input map and the output map for a
    convolution (a quadconv outputs ``num_filters`` channels, its branches combined), the operands for a GEMM, the
    vector unit's reads and writes otherwise."""
    if not layer.on_array:
        return layer.in_elems, layer.out_elems
    g, m, k, n = layer.gemm()
    if layer.kind == "gemm":
        return g * m * k, g * m * n
    return layer.batch * layer.in_h * layer.in_w * layer.in_c, m * layer.num_filters


def weight_count(layer: SimLayer) -> int:
    """Weights of an array layer: groups x K x N (a quadconv's three branches included)."""
    g, _, k, n = layer.gemm()
    return g * k * n


def post_ops(layer: SimLayer) -> int:
    """Vector-unit operations of an array layer: its fused followers, plus a quadconv's product and sum (2 per
    output)."""
    return layer.fused_ops + (2 * act_elems(layer)[1] if layer.kind == "quadconv" else 0)


def positive(obj: Any, names: Sequence[str], fix: str) -> None:
    """Raise a ValueError naming the first field of ``obj`` in ``names`` that is not a positive number."""
    for f in names:
        v = getattr(obj, f)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or math.isinf(v):
            raise ValueError(f"{type(obj).__name__} {getattr(obj, 'name', '')!r}: {f} = {v!r} must be a positive "
                             f"finite number; {fix}")


# --- the records --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineLayer:
    """One layer on an engine.

    Attributes:
        name, kind: the layer.
        unit: what ran it: ``crossbar``, ``xnor``, ``int8`` or ``vector``.
        cycles: cycles of that unit: crossbar input cycles (DAC steps, one crossbar read each) on the critical path,
            else clock cycles of compute.
        time_s: the layer's time, DRAM stalls included.
        energy_j: the sum of ``energy``.
        energy: joules by part (``adc``, ``crossbar``, ``dac``, ``buffer``, ``xnor``, ``mac``, ``vector``, ``sram``,
            ``dram``, ...).
        utilisation: crossbar: used cells / allocated cells; xnor and int8: useful operations / unit slots over the
            compute cycles; 0 for the vector unit.
        used: crossbars (all replicas) or units the layer occupies.
        replicas: copies of the layer's weights (crossbar; 1 elsewhere).
        macs: multiply-adds (XNORs for a binary layer).
        stall_s: time waiting for DRAM beyond compute.
        dram_bytes: bytes moved to and from DRAM.
        detail: the mapping's numbers.
        note: why the layer ran as it did, where it matters.
    """

    name: str
    kind: str
    unit: str
    cycles: int
    time_s: float
    energy_j: float
    energy: dict[str, float] = field(default_factory=dict)
    utilisation: float = 0.0
    used: int = 0
    replicas: int = 1
    macs: int = 0
    stall_s: float = 0.0
    dram_bytes: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class EngineResult:
    """A network on an engine.

    Attributes:
        engine: the engine's name.
        layers: per-layer records, in order.
        batch: images per run.
        pipelined: layers run on separate hardware at once (the crossbar's weights all stay resident), so a new
            batch can start every ``period_s``; otherwise one batch at a time.
        extra: engine-wide figures (area, peak power, crossbars used, one-time weight programming, ...).
        notes: what the reader should know about the run.
    """

    engine: str
    layers: tuple[EngineLayer, ...]
    batch: int = 1
    pipelined: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def latency_s(self) -> float:
        """Layers one after another."""
        return sum(x.time_s for x in self.layers)

    @property
    def period_s(self) -> float:
        """Time between batches: the slowest layer when pipelined, else the latency."""
        return max((x.time_s for x in self.layers), default=0.0) if self.pipelined else self.latency_s

    @property
    def energy_j(self) -> float:
        return sum(x.energy_j for x in self.layers)

    @property
    def inferences_per_s(self) -> float:
        return self.batch / self.period_s if self.period_s else math.inf

    @property
    def inferences_per_j(self) -> float:
        return self.batch / self.energy_j if self.energy_j else math.inf

    def energy_by_part(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for x in self.layers:
            for k, v in x.energy.items():
                out[k] = out.get(k, 0.0) + v
        return out

    @property
    def total(self) -> dict[str, float]:
        return {"latency_s": self.latency_s, "period_s": self.period_s, "energy_j": self.energy_j,
                "inferences_per_s": self.inferences_per_s, "inferences_per_j": self.inferences_per_j,
                "macs": sum(x.macs for x in self.layers), "dram_bytes": sum(x.dram_bytes for x in self.layers),
                "batch": self.batch}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (infinities and NaNs as ``None``)."""
        return _jsonable({"engine": self.engine, "batch": self.batch, "pipelined": self.pipelined,
                          "total": self.total, "energy_by_part": self.energy_by_part(), "extra": self.extra,
                          "notes": list(self.notes), "layers": [asdict(x) for x in self.layers]})

    def summary(self, top: int = 3) -> str:
        """A few lines: totals, the energy split and the slowest layers."""
        t = self.total
        units = {u: sum(1 for x in self.layers if x.unit == u) for u in UNITS}
        lines = [f"{self.engine}: {len(self.layers)} layers ("
                 + ", ".join(f"{n} {u}" for u, n in units.items() if n) + f"), batch {self.batch}",
                 f"  latency {t['latency_s'] * 1e6:,.2f} us, {t['inferences_per_s']:,.1f} inferences/s"
                 + (" (pipelined)" if self.pipelined else "") + f", energy {t['energy_j'] * 1e6:,.3f} uJ"]
        parts = self.energy_by_part()
        if self.energy_j:
            lines.append("  energy: " + ", ".join(f"{k} {v / self.energy_j:.0%}" for k, v in
                                                  sorted(parts.items(), key=lambda kv: -kv[1]) if v))
        for x in sorted(self.layers, key=lambda x: -x.time_s)[:top]:
            lines.append(f"  slow: {x.name} ({x.unit}) {x.time_s * 1e6:,.2f} us, utilisation {x.utilisation:.1%}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, float) and (math.isinf(o) or math.isnan(o)):
        return None
    if o is None or isinstance(o, (bool, int, float, str)):
        return o
    return str(o)


def batched(layers: Sequence[SimLayer], batch: int) -> list[SimLayer]:
    """The checked layers at ``batch`` times their batch."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a whole number of images, at least 1, not {batch!r}")
    layers = check_layers(layers)
    return layers if batch == 1 else [x.with_batch(x.batch * batch) for x in layers]


class Engine(Protocol):
    name: str

    def run(self, layers: Sequence[SimLayer], *, batch: int = 1) -> EngineResult: ...
