"""A binary (XNOR-popcount) engine over the simulator's :class:`~chipfit.hw.sim.workload.SimLayer` list.

Binary networks (XNOR-Net, Rastegari et al., ECCV 2016; BNN, Hubara, Courbariaux et al., NeurIPS 2016) binarise the
weights and activations of every convolution and linear layer but the first and the last, and FINN (Umuroglu et al.,
FPGA 2017) runs them on arrays of XNOR-popcount units; this engine is such an array.

**Units.** ``units`` XNOR-popcount units, each of which takes ``width`` bits of one output channel's weights and of
the input per cycle: ``width`` XNORs, a popcount and one accumulate. A binary layer's product (M x K) @ (K x N) per
group (:meth:`SimLayer.gemm`) takes ``M x ceil(K / width) x ceil(N / units)`` cycles per group, groups one after
another (a 3x3 depthwise group, K = 9, uses 9 of ``width`` bits and 1 of ``units`` units). With ``keep_first_last``
(the default, as XNOR-Net and BNN do) the first and the last layer with weights run at int8 on a small MAC unit:
``ceil(groups x M x K x N / int8_macs)`` cycles; so do attention's activation x activation products. Fused
followers (a quadconv's product and sum included) add ``ceil(ops / lanes)`` vector-unit cycles; pooling,
element-wise and norm layers run on the vector unit alone, at 8 bits.

**Memory.** Activations are stored at 1 bit for binary layers and 8 bits for int8 and vector layers. A layer's input
and output stay in the SRAM when together they fit it; otherwise both go through DRAM (read in, written back once).
Weights are read once from DRAM (1 bit each, 8 for int8 layers), through the SRAM. The network's first input is
taken as on chip. DRAM transfers overlap compute: a layer takes max(compute, DRAM bytes / bandwidth).

**Energy.** XNORs x pJ/bit + accumulates (groups x M x ceil(K / width) x N) x pJ + int8 MACs x pJ + vector
operations x pJ + SRAM bytes x pJ + DRAM bytes x pJ. The per-bit energy and area of an XNOR with its share of the
popcount tree are ASSUMPTIONS derived from Horowitz's 45 nm adder (ISSCC 2014): an XNOR gate and one full-adder bit
of the tree, each 1/8 of an 8-bit adder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from chipfit.hw.sim._engine import (
    EngineLayer,
    EngineResult,
    act_elems,
    batched,
    has_weights,
    positive,
    post_ops,
    weight_count,
)
from chipfit.hw.sim.workload import SimLayer

VECTOR_BITS = 8  # non-matrix layers work on 8-bit values (a binary net's real-valued shortcuts and pooled maps)


@dataclass(frozen=True)
class BinaryEngine:
    """An array of XNOR-popcount units, a small int8 MAC unit and a vector unit, with SRAM and DRAM.

    Attributes:
        name: what results call it.
        units: XNOR-popcount units (output channels computed at once).
        width: bits one unit takes per cycle.
        clock_ghz: clock.
        sram_kb: on-chip SRAM for activations.
        dram_gbps, dram_pj_per_byte: DRAM bandwidth (GB/s) and energy.
        sram_pj_per_byte: SRAM energy.
        xnor_pj_per_bit, xnor_um2_per_bit: one XNOR with its share of the popcount tree.
        acc_pj, acc_um2: one unit's accumulate (a 16-bit add) per cycle.
        int8_macs, int8_mac_pj, int8_mac_um2: the int8 MAC unit for the kept layers.
        vector_lanes, vector_pj_per_op, vector_um2_per_lane: the vector unit.
        sram_um2_per_bit: SRAM area.
        keep_first_last: run the first and last layers with weights at int8.
        node_nm: the process the figures belong to (no scaling is applied).
        sources: field -> citation, for every number.
    """

    name: str
    units: int
    width: int
    clock_ghz: float
    sram_kb: float
    dram_gbps: float
    dram_pj_per_byte: float
    sram_pj_per_byte: float
    xnor_pj_per_bit: float
    xnor_um2_per_bit: float
    acc_pj: float
    acc_um2: float
    int8_macs: int
    int8_mac_pj: float
    int8_mac_um2: float
    vector_lanes: int
    vector_pj_per_op: float
    vector_um2_per_lane: float
    sram_um2_per_bit: float
    node_nm: float
    keep_first_last: bool = True
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        nums = [f.name for f in fields(self) if f.name not in ("name", "sources", "keep_first_last")]
        positive(self, nums, "use dataclasses.replace(XNOR_ENGINE, ...) with positive sizes, rates and energies")
        for f in ("units", "width", "int8_macs", "vector_lanes"):
            if not isinstance(getattr(self, f), int):
                raise ValueError(f"BinaryEngine {self.name!r}: {f} must be a whole number, not {getattr(self, f)!r}")

    @property
    def sram_bytes(self) -> float:
        return self.sram_kb * 1024

    @property
    def area_mm2(self) -> float:
        """Logic and SRAM (no control, wiring or I/O overhead)."""
        um2 = (self.units * (self.width * self.xnor_um2_per_bit + self.acc_um2) + self.int8_macs * self.int8_mac_um2
               + self.vector_lanes * self.vector_um2_per_lane + self.sram_bytes * 8 * self.sram_um2_per_bit)
        return um2 * 1e-6

    @property
    def peak_power_w(self) -> float:
        """Every unit, MAC and lane busy each cycle and DRAM at full bandwidth (SRAM and leakage not counted)."""
        pj_per_cycle = (self.units * (self.width * self.xnor_pj_per_bit + self.acc_pj)
                        + self.int8_macs * self.int8_mac_pj + self.vector_lanes * self.vector_pj_per_op)
        return (pj_per_cycle * self.clock_ghz + self.dram_gbps * self.dram_pj_per_byte) * 1e-3

    def unit_of(self, layers: Sequence[SimLayer]) -> list[str]:
        """Where each layer runs: ``xnor``, ``int8`` or ``vector``."""
        weighted = [i for i, x in enumerate(layers) if has_weights(x)]
        kept = {weighted[0], weighted[-1]} if weighted and self.keep_first_last else set()
        return ["vector" if not x.on_array else "int8" if i in kept or not has_weights(x) else "xnor"
                for i, x in enumerate(layers)]

    def run(self, layers: Sequence[SimLayer], *, batch: int = 1) -> EngineResult:
        """Run ``layers`` (see the module docstring for the model).

        Raises:
            ValueError: bad layers or batch.
        """
        layers = batched(layers, batch)
        units = self.unit_of(layers)
        out = tuple(self._layer(x, u) for x, u in zip(layers, units, strict=True))
        notes = []
        if self.keep_first_last and "int8" in units:
            notes.append("first and last layers with weights kept at int8 (keep_first_last)")
        spilled = sum(1 for x in out if x.detail.get("spilled"))
        if spilled:
            notes.append(f"{spilled} layers' activations did not fit the {self.sram_kb:g} KB SRAM and went "
                         "through DRAM")
        extra = {"area_mm2": self.area_mm2, "peak_power_w": self.peak_power_w, "node_nm": self.node_nm,
                 "sram_bytes": self.sram_bytes}
        return EngineResult(self.name, out, batch=layers[0].batch, pipelined=False, extra=extra, notes=tuple(notes))

    def _layer(self, layer: SimLayer, unit: str) -> EngineLayer:
        pj: dict[str, float] = {}
        a_in, a_out = act_elems(layer)
        detail: dict[str, float | int | bool] = {}
        if unit == "vector":
            bits, cycles, macs, util = VECTOR_BITS, math.ceil(layer.vector_ops / self.vector_lanes), 0, 0.0
            weight_b = layer.weight_elems * VECTOR_BITS / 8
            pj["vector"] = layer.vector_ops * self.vector_pj_per_op
        else:
            g, m, k, n = layer.gemm()
            macs, ops = layer.macs, post_ops(layer)
            vcycles = math.ceil(ops / self.vector_lanes)
            if unit == "xnor":
                bits, kc, nf = 1, math.ceil(k / self.width), math.ceil(n / self.units)
                cycles = g * m * kc * nf
                util = macs / (cycles * self.units * self.width)
                pj["xnor"] = macs * self.xnor_pj_per_bit
                pj["accumulate"] = g * m * kc * n * self.acc_pj
                detail = {"k_chunks": kc, "n_folds": nf}
            else:
                bits, cycles = 8, math.ceil(g * m * k * n / self.int8_macs)
                util = macs / (cycles * self.int8_macs)
                pj["mac"] = macs * self.int8_mac_pj
            detail.update({"array_cycles": cycles, "vector_cycles": vcycles})
            cycles += vcycles
            weight_b = math.ceil(weight_count(layer) * bits / 8)
            pj["vector"] = ops * self.vector_pj_per_op
        act_b = (a_in + a_out + layer.fused_reads) * bits / 8
        spilled = (a_in + a_out) * bits / 8 > self.sram_bytes
        dram = weight_b + (act_b if spilled else 0.0)
        pj["sram"] = (act_b + weight_b) * self.sram_pj_per_byte
        pj["dram"] = dram * self.dram_pj_per_byte
        compute = cycles / (self.clock_ghz * 1e9)
        time = max(compute, dram / (self.dram_gbps * 1e9))
        detail.update({"act_bits": bits, "spilled": spilled, "weight_bytes": weight_b, "act_bytes": act_b})
        note = layer.note
        if layer.on_array and not has_weights(layer):
            note = (note + "; " if note else "") + "activation x activation product: int8 MAC unit"
        energy = {p: v * 1e-12 for p, v in pj.items()}
        used = self.units if unit == "xnor" else self.int8_macs if unit == "int8" else self.vector_lanes
        return EngineLayer(layer.name, layer.kind, unit, cycles, time, sum(energy.values()), energy, util, used, 1,
                           macs, time - compute, dram, detail, note)


# --- built-in -----------------------------------------------------------------------------------------------------

_H = "Horowitz ISSCC 2014, 45 nm"
_A = "assumption"
XNOR_ENGINE = BinaryEngine(
    name="xnor", units=64, width=256, clock_ghz=0.5, sram_kb=256, dram_gbps=6.4, dram_pj_per_byte=160.0,
    sram_pj_per_byte=5.0, xnor_pj_per_bit=2 * 0.03 / 8, xnor_um2_per_bit=2 * 36 / 8, acc_pj=0.05,
    acc_um2=36 + (137 - 36) * 8 / 24, int8_macs=64, int8_mac_pj=0.2 + 0.03, int8_mac_um2=282 + 36, vector_lanes=16,
    vector_pj_per_op=0.03, vector_um2_per_lane=36.0, sram_um2_per_bit=0.346 / 0.5, node_nm=45,
    sources={
        "units": f"{_A}: 64 XNOR-popcount units (FINN-style PEs)",
        "width": f"{_A}: 256 bits per unit per cycle (FINN-style SIMD lanes)",
        "clock_ghz": f"{_A}: 500 MHz, an edge ASIC clock",
        "sram_kb": f"{_A}: 256 KB activation SRAM",
        "dram_gbps": f"{_A}: 6.4 GB/s, an LPDDR4 x16 channel",
        "dram_pj_per_byte": f"{_H}: 640 pJ per 32-bit DRAM access (as in Han et al.) = 160 pJ/byte",
        "sram_pj_per_byte": f"{_A}: between {_H}'s 32 KB SRAM (2.5 pJ/byte) and 1 MB SRAM (12.5 pJ/byte)",
        "xnor_pj_per_bit": f"{_A}, derived from {_H} (8-bit add 0.03 pJ): an XNOR gate and one full-adder bit of the "
                           "popcount tree, each 1/8 of an 8-bit adder = 0.0075 pJ",
        "xnor_um2_per_bit": f"{_A}, derived from {_H} (8-bit add 36 um2): XNOR and popcount-tree bit, each 1/8 of "
                            "an 8-bit adder = 9 um2",
        "acc_pj": f"{_A}: a 16-bit add, interpolated linearly from {_H} (0.03 pJ at 8 bits, 0.1 at 32) = 0.05 pJ",
        "acc_um2": f"{_A}: a 16-bit adder, interpolated linearly from {_H} (36 um2 at 8 bits, 137 at 32) = 69.7 um2",
        "int8_macs": f"{_A}: 64 int8 MACs for the first and last layers",
        "int8_mac_pj": f"{_H}: 8-bit multiply 0.2 pJ + 8-bit add 0.03 pJ",
        "int8_mac_um2": f"{_H}: 8-bit multiply 282 um2 + 8-bit add 36 um2",
        "vector_lanes": f"{_A}: 16 lanes for pooling, element-wise and norm layers",
        "vector_pj_per_op": f"{_H}: 8-bit add 0.03 pJ", "vector_um2_per_lane": f"{_H}: 8-bit add 36 um2",
        "sram_um2_per_bit": "Intel 45 nm 6T SRAM cell 0.346 um2 (Mistry et al., IEDM 2007) over an assumed array "
                            "efficiency of 0.5 (as chipfit.hw.area)",
        "node_nm": f"{_H}",
    },
)
