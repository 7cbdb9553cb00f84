"""The simulator's records: :class:`LayerResult` per layer and :class:`SimResult` per network, to JSON and CSV.

Conventions are the simulator's (:mod:`chipfit.hw.sim.simulate`): cycles are array clock cycles, bytes follow the
precision, energy in joules.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chipfit.cost.records import Precision
from chipfit.hw.estimate import Estimate, LayerEstimate
from chipfit.hw.sim.arch import Arch
from chipfit.hw.sim.multichip import Pipeline


@dataclass
class LayerResult:
    """One layer on the accelerator.

    Attributes:
        name, kind: the layer.
        compute_cycles: array (or vector-unit) cycles, SCALE-Sim's convention for array layers.
        stall_cycles: cycles waiting for DRAM.
        total_cycles: compute + stall.
        utilisation: MACs / (total cycles x PEs); 0 for vector-unit layers.
        macs: multiply-adds executed (after sparsity).
        dram_read_bytes, dram_write_bytes, sram_read_bytes, sram_write_bytes: traffic.
        energy_j: MAC + vector + SRAM + DRAM energy.
        output_bytes: the activation the layer produces (what a pipeline cut sends on).
        dataflow, folds: the mapping (empty for vector-unit layers).
        chip: pipeline stage it runs on.
        detail: per-operand word counts and the mapping.
        note: how the layer was mapped where it matters.
    """

    name: str
    kind: str
    compute_cycles: int
    stall_cycles: int
    total_cycles: int
    utilisation: float
    macs: int
    dram_read_bytes: float
    dram_write_bytes: float
    sram_read_bytes: float
    sram_write_bytes: float
    energy_j: float
    output_bytes: float = 0.0
    dataflow: str = ""
    folds: int = 0
    chip: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""


CSV_FIELDS = ("name", "kind", "chip", "dataflow", "folds", "compute_cycles", "stall_cycles", "total_cycles",
              "utilisation", "macs", "dram_read_bytes", "dram_write_bytes", "sram_read_bytes", "sram_write_bytes",
              "energy_j", "note")


@dataclass
class SimResult:
    """A network on an accelerator: per-layer records and totals.

    ``bits`` and ``weight_bits`` are the precision's activation and weight widths.
    """

    model: str
    arch: Arch
    dataflow: str
    batch: int
    precision: Precision
    sparsity: str | None
    layers: list[LayerResult]
    pipeline: Pipeline | None = None
    notes: list[str] = field(default_factory=list)
    fused: bool = True

    @property
    def bits(self) -> int:
        return self.precision.act_bits

    @property
    def weight_bits(self) -> int:
        return self.precision.weight_bits

    def estimate(self) -> Estimate:
        """The simulation as the estimate record every latency source returns (source ``simulator``).

        A layer is memory-bound when moving its DRAM bytes at the target's bandwidth takes longer than its compute.
        """
        clock = self.arch.clock_hz
        bpc = self.arch.dram_bytes_per_cycle
        layers = []
        for x in self.layers:
            dram = x.dram_read_bytes + x.dram_write_bytes
            memory = dram / bpc if bpc else 0.0
            layers.append(LayerEstimate(x.name, x.total_cycles / clock, x.energy_j,
                                        "memory" if memory > x.compute_cycles else "compute",
                                        x.compute_cycles / clock, memory / clock, dram))
        tot = self.total
        return Estimate("simulator", self.arch.name, self.model, self.precision.name, self.fused, tot["time_s"],
                        tot["energy_j"], tuple(layers), tuple(self.notes),
                        {k: tot[k] for k in ("cycles", "stall_cycles", "inferences_per_s", "inferences_per_j",
                                             "chips", "batch")} | {"dataflow": self.dataflow})

    @property
    def total(self) -> dict[str, float]:
        """cycles, time_s (at the clock), energy_j, inferences_per_s, inferences_per_j, macs, DRAM and SRAM bytes,
        stall_cycles; with several chips, time_s is the pipeline's latency and inferences_per_s its throughput."""
        cycles = sum(x.total_cycles for x in self.layers)
        energy = sum(x.energy_j for x in self.layers)
        if self.pipeline is not None:
            link = sum(s.transfer_bytes for s in self.pipeline.stages) * self.arch.energy.dram_pj_per_byte * 1e-12
            energy += link
            time_s, ips = self.pipeline.latency_s, self.pipeline.inferences_per_s
        else:
            time_s = cycles / self.arch.clock_hz
            ips = self.batch / time_s if time_s else float("inf")
        return {
            "cycles": cycles,
            "compute_cycles": sum(x.compute_cycles for x in self.layers),
            "stall_cycles": sum(x.stall_cycles for x in self.layers),
            "time_s": time_s,
            "energy_j": energy,
            "inferences_per_s": ips,
            "inferences_per_j": self.batch / energy if energy else float("inf"),
            "macs": sum(x.macs for x in self.layers),
            "dram_read_bytes": sum(x.dram_read_bytes for x in self.layers),
            "dram_write_bytes": sum(x.dram_write_bytes for x in self.layers),
            "sram_read_bytes": sum(x.sram_read_bytes for x in self.layers),
            "sram_write_bytes": sum(x.sram_write_bytes for x in self.layers),
            "chips": len(self.pipeline.stages) if self.pipeline else 1,
            "batch": self.batch,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "arch": self.arch.to_dict(), "dataflow": self.dataflow, "batch": self.batch,
                "precision": self.precision.name, "bits": self.bits, "weight_bits": self.weight_bits,
                "fused": self.fused, "sparsity": self.sparsity,
                "layers": [asdict(x) for x in self.layers],
                "total": self.total, "pipeline": self.pipeline.to_dict() if self.pipeline else None,
                "notes": self.notes}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def to_csv(self, path: str | Path) -> Path:
        """One row per layer (the fields of :data:`CSV_FIELDS`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            for x in self.layers:
                w.writerow(asdict(x))
        return path


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and (math.isinf(o) or math.isnan(o)):
        return None
    return str(o)
