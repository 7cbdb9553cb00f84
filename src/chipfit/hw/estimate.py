"""The one record every latency source returns: roofline, simulator, and later measured and predicted.

An :class:`Estimate` is the time and energy of one network on one target at one precision, in one execution mode
(fused or not), per layer and in total, with the source that produced it. Cost records (:mod:`chipfit.cost`) hold
counts only; whatever estimates time is a hardware model and answers with this record.

A layer's ``bound`` says what sets its time: ``compute`` (arithmetic at the chip's attainable peak), ``memory``
(bytes at the memory bandwidth) or ``overhead`` (the fixed per-layer cost, launch or reconfiguration, is larger than
both); ``None`` where the source cannot tell (a measurement of the whole network).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SOURCES = ("roofline", "simulator", "measured", "predicted")
BOUNDS = ("compute", "memory", "overhead")


@dataclass(frozen=True)
class LayerEstimate:
    """One execution unit (a layer, or a fused chain) on the target.

    Attributes:
        name: the unit's name, as in the profile or the simulator's workload.
        latency_s: its time.
        energy_j: its energy, where the source models energy.
        bound: ``compute``, ``memory`` or ``overhead`` (see the module docstring), or ``None``.
        compute_s: time of its arithmetic alone, where known.
        memory_s: time of its memory traffic alone, where known.
        dram_bytes: bytes it moves to and from DRAM, where known.
    """

    name: str
    latency_s: float
    energy_j: float | None = None
    bound: str | None = None
    compute_s: float | None = None
    memory_s: float | None = None
    dram_bytes: float | None = None

    def __post_init__(self) -> None:
        if self.bound is not None and self.bound not in BOUNDS:
            raise ValueError(f"bound must be one of {', '.join(BOUNDS)}, not {self.bound!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "latency_s": self.latency_s, "energy_j": self.energy_j, "bound": self.bound,
                "compute_s": self.compute_s, "memory_s": self.memory_s, "dram_bytes": self.dram_bytes}


@dataclass(frozen=True)
class Estimate:
    """A network's latency and energy on one target.

    Attributes:
        source: ``roofline``, ``simulator``, ``measured`` or ``predicted``.
        target: the chip (or runtime and machine) it applies to.
        model: the network's label.
        precision: the precision's name (``int8``, ``w4a8``, ...).
        fused: whether layers ran fused (conv + BN + activation + add as one kernel).
        latency_s: the network's time per inference batch.
        energy_j: its energy, where the source models energy.
        layers: per-unit records, in execution order (empty for a whole-network measurement).
        notes: what the reader should know about this estimate.
        extra: source-specific figures (simulator cycles and throughput, measured samples, the chip's profile).
    """

    source: str
    target: str
    model: str
    precision: str
    fused: bool
    latency_s: float
    energy_j: float | None = None
    layers: tuple[LayerEstimate, ...] = ()
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if not math.isfinite(self.latency_s) or self.latency_s < 0:
            raise ValueError(f"latency must be a finite number >= 0, got {self.latency_s!r}")

    @property
    def dram_bytes(self) -> float | None:
        """Bytes to and from DRAM summed over the layers; ``None`` when the source does not say."""
        values = [x.dram_bytes for x in self.layers]
        return None if not values or any(v is None for v in values) else float(sum(values))

    def by_bound(self) -> dict[str, float]:
        """Summed layer latency per bound (``unknown`` for layers without one)."""
        out: dict[str, float] = {}
        for x in self.layers:
            key = x.bound or "unknown"
            out[key] = out.get(key, 0.0) + x.latency_s
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "model": self.model, "precision": self.precision,
                "fused": self.fused, "latency_s": self.latency_s, "energy_j": self.energy_j,
                "dram_bytes": self.dram_bytes, "by_bound": self.by_bound(),
                "layers": [x.to_dict() for x in self.layers], "notes": list(self.notes), "extra": dict(self.extra)}
