"""An in-memory (ReRAM / memristor crossbar) engine: ISAAC (Shafiee et al., ISCA 2016) and a PRIME-like variant
(Chi et al., ISCA 2016), over the simulator's :class:`~chipfit.hw.sim.workload.SimLayer` list.

**Mapping.** A layer with weights is the product (M x K) @ (K x N) per group (:meth:`SimLayer.gemm`: M = output
positions x batch, K = in_c / groups x kh x kw, N = out channels, 3 x for a quadconv's branches). Its weights stay in
crossbars for good (ISAAC and PRIME keep every weight of the network resident): a weight of ``weight_bits`` spans
``c = ceil(weight_bits / bits_per_cell)`` adjacent columns, so a group takes ``rb x cb`` crossbars, ``rb =
ceil(K / rows)`` and ``cb = ceil(N c / cols)``, and each group has crossbars of its own. Utilisation is used cells /
allocated cells, ``K N c / (rb cb rows cols)``: a 3x3 depthwise group (K = 9, N = 1) fills 9 x c cells of a whole
crossbar (block-diagonal packing of several groups into one crossbar is not modelled). A network that needs more
crossbars than the engine has raises :class:`CrossbarCapacityError`.

**Replication.** Spare crossbars hold copies of the slowest layers' weights, greedily: while the slowest layer's copy
fits in the spares, has fewer copies than MVMs and a copy makes it faster, it gets one more; when not, replication
stops (no other copy can shorten the pipeline's period).

**Time.** An input of ``input_bits`` streams through ``dac_bits`` DACs in ``s = ceil(input_bits / dac_bits)`` cycles;
each cycle is one crossbar read, whose columns the crossbar's ADCs then convert. One MVM (a K-vector through one
group's crossbars) takes ``s x max(read time, columns used / (ADCs x sample rate))``, ``columns used = min(N c,
cols)`` in the busiest crossbar. A layer takes ``ceil(M / replicas)`` MVMs one after another (its groups and column and
row tiles run in parallel on their own crossbars), plus ``ceil(ops / lanes)`` vector-unit cycles for its fused
followers (a quadconv's product and sum included). Layers run one after another (``latency_s``) and, ISAAC's way,
as a layer pipeline (``period_s`` = the slowest layer, ``inferences_per_s`` = batch / period). An activation map
larger than all tiles' buffers goes through DRAM, overlapped with compute (time = max).

**Energy.** ADC conversions (M s rb N c per group) x pJ + crossbar reads (M s rb cb) x pJ + DAC events (one row
driven for one cycle: M s K cb) x pJ + buffer bytes (each MVM's K inputs read, outputs and fused operands written or
read, at ``input_bits``) x pJ + vector operations x pJ + DRAM bytes x pJ + static power x time (0 W in the built-ins:
not modelled). Per-event energies come from the component powers: an ADC's power / its sample rate, a crossbar's
(a DAC's) power x the read time, the buffer's power / its bandwidth. Shift-and-add units, registers, bus and router
count in ``peak_power_w`` and ``area_mm2`` only, not per event. Weights never move at inference; their one-time
programming is reported apart (``extra['program_energy_j']``, ``extra['program_s']``). Attention's activation x
activation products have no stationary weights: they run on the vector unit (2 operations per MAC).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

from chipfit.hw.sim._engine import (
    EngineLayer,
    EngineResult,
    act_elems,
    batched,
    has_weights,
    positive,
    post_ops,
)
from chipfit.hw.sim.workload import SimLayer


class CrossbarCapacityError(ValueError):
    """The network's weights need more crossbars than the engine has."""


@dataclass(frozen=True)
class Crossbar:
    """An ISAAC-style crossbar accelerator: tiles of IMAs (in-situ multiply-accumulate units) of crossbars.

    Attributes:
        name: what results call it.
        xbar_rows, xbar_cols: cells of one crossbar.
        bits_per_cell: weight bits one cell stores.
        weight_bits: weight width; a weight spans ceil(weight_bits / bits_per_cell) columns.
        input_bits: activation width (inputs streamed bit-serially, outputs stored in the buffer at this width).
        dac_bits: input bits applied per crossbar read.
        read_ns: one crossbar read.
        adc_bits: ADC resolution (informative: time and energy use the sample rate and power given).
        adc_gsps: one ADC's sample rate, in giga-samples per second.
        adcs_per_xbar: ADCs shared by one crossbar's columns.
        xbars_per_ima, imas_per_tile, tiles: the hierarchy.
        adc_mw, dac_mw, xbar_mw: power of one ADC, one row's DAC, one crossbar while reading.
        ima_other_mw, tile_other_mw: the rest of an IMA (sample-and-hold, shift-and-add, registers) and of a tile
            (bus, router share, sigmoid, max-pool, output register); peak power only.
        buffer_kb, buffer_mw, buffer_gbps: one tile's activation buffer (eDRAM): size, power, bandwidth in GB/s.
        io_w: off-chip links' power (peak power only).
        adc_mm2, dac_mm2, xbar_mm2, ima_other_mm2, buffer_mm2, tile_other_mm2, io_mm2: areas (per ADC, per DAC, per
            crossbar, per IMA, per tile, per tile, per chip).
        vector_lanes, vector_ghz, vector_pj_per_op: the digital vector unit (pooling, element-wise, normalisation).
        dram_pj_per_byte, dram_gbps: DRAM energy and bandwidth, for activations the buffers cannot hold.
        static_w: power drawn all the time (energy += static_w x time).
        program_pj_per_cell, program_ns_per_row: one-time weight programming (rows written one at a time, all
            crossbars in parallel).
        node_nm: the process the figures belong to (no scaling is applied).
        sources: field -> citation, for every number.
    """

    name: str
    xbar_rows: int
    xbar_cols: int
    bits_per_cell: int
    weight_bits: int
    input_bits: int
    dac_bits: int
    read_ns: float
    adc_bits: int
    adc_gsps: float
    adcs_per_xbar: int
    xbars_per_ima: int
    imas_per_tile: int
    tiles: int
    adc_mw: float
    dac_mw: float
    xbar_mw: float
    ima_other_mw: float
    tile_other_mw: float
    buffer_kb: float
    buffer_mw: float
    buffer_gbps: float
    io_w: float
    adc_mm2: float
    dac_mm2: float
    xbar_mm2: float
    ima_other_mm2: float
    buffer_mm2: float
    tile_other_mm2: float
    io_mm2: float
    vector_lanes: int
    vector_ghz: float
    vector_pj_per_op: float
    dram_pj_per_byte: float
    dram_gbps: float
    static_w: float
    program_pj_per_cell: float
    program_ns_per_row: float
    node_nm: float
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        zero_ok = {"ima_other_mw", "tile_other_mw", "io_w", "ima_other_mm2", "tile_other_mm2", "io_mm2", "static_w",
                   "program_pj_per_cell", "program_ns_per_row"}
        nums = [f.name for f in fields(self) if f.name not in ("name", "sources")]
        positive(self, [f for f in nums if f not in zero_ok], "use with_tiles(n) with n >= 1, or "
                 "dataclasses.replace(ISAAC_LIKE, ...) with positive sizes, rates and powers")
        for f in zero_ok:
            if not getattr(self, f) >= 0:
                raise ValueError(f"Crossbar {self.name!r}: {f} = {getattr(self, f)!r} must be 0 or more")
        for f in ("xbar_rows", "xbar_cols", "bits_per_cell", "weight_bits", "input_bits", "dac_bits", "adc_bits",
                  "adcs_per_xbar", "xbars_per_ima", "imas_per_tile", "tiles", "vector_lanes"):
            if not isinstance(getattr(self, f), int):
                raise ValueError(f"Crossbar {self.name!r}: {f} must be a whole number, not {getattr(self, f)!r}")

    def with_tiles(self, n: int) -> Crossbar:
        """The same engine with ``n`` tiles."""
        return replace(self, tiles=n)

    # --- derived figures ------------------------------------------------------------------------------------------

    @property
    def cells_per_weight(self) -> int:
        return math.ceil(self.weight_bits / self.bits_per_cell)

    @property
    def input_cycles(self) -> int:
        return math.ceil(self.input_bits / self.dac_bits)

    @property
    def xbars_per_tile(self) -> int:
        return self.xbars_per_ima * self.imas_per_tile

    @property
    def xbars(self) -> int:
        return self.tiles * self.xbars_per_tile

    @property
    def adc_pj(self) -> float:
        """One conversion: an ADC's power over its sample rate (mW / GS/s = pJ)."""
        return self.adc_mw / self.adc_gsps

    @property
    def xbar_pj(self) -> float:
        """One crossbar read: its power over the read time (mW x ns = pJ)."""
        return self.xbar_mw * self.read_ns

    @property
    def dac_pj(self) -> float:
        """One row driven for one read."""
        return self.dac_mw * self.read_ns

    @property
    def buffer_pj_per_byte(self) -> float:
        """The buffer's power over its bandwidth (mW / (GB/s) = pJ/byte)."""
        return self.buffer_mw / self.buffer_gbps

    @property
    def buffer_bytes(self) -> float:
        """All tiles' buffers."""
        return self.tiles * self.buffer_kb * 1024

    @property
    def adc_bits_full_precision(self) -> int:
        """ADC bits an exact column sum of all rows needs (ISAAC's weight flipping saves one; PRIME keeps the high
        bits of a wider sum)."""
        return math.ceil(math.log2(self.xbar_rows * (2 ** self.bits_per_cell - 1) * (2 ** self.dac_bits - 1) + 1))

    @property
    def area_mm2(self) -> float:
        """Component areas x counts, off-chip links included."""
        ima = self.xbars_per_ima * (self.adcs_per_xbar * self.adc_mm2 + self.xbar_rows * self.dac_mm2
                                    + self.xbar_mm2) + self.ima_other_mm2
        return self.tiles * (self.imas_per_tile * ima + self.buffer_mm2 + self.tile_other_mm2) + self.io_mm2

    @property
    def peak_power_w(self) -> float:
        """Every component at its listed power (ISAAC's table), off-chip links included."""
        ima = self.xbars_per_ima * (self.adcs_per_xbar * self.adc_mw + self.xbar_rows * self.dac_mw
                                    + self.xbar_mw) + self.ima_other_mw
        return self.tiles * (self.imas_per_tile * ima + self.buffer_mw + self.tile_other_mw) * 1e-3 + self.io_w

    # --- running a network ----------------------------------------------------------------------------------------

    def place(self, layer: SimLayer) -> dict[str, int]:
        """One copy of a layer's weights: row tiles ``rb`` and column tiles ``cb`` per group, ``xbars`` in all,
        ``used_cells`` and ``columns`` (N x cells per weight)."""
        g, _, k, n = layer.gemm()
        cols = n * self.cells_per_weight
        rb, cb = math.ceil(k / self.xbar_rows), math.ceil(cols / self.xbar_cols)
        return {"groups": g, "k": k, "n": n, "columns": cols, "row_tiles": rb, "col_tiles": cb,
                "xbars": g * rb * cb, "used_cells": g * k * cols}

    def mvm_s(self, columns: int) -> float:
        """One MVM: input cycles x the longer of a read and the busiest crossbar's conversions."""
        convert_s = min(columns, self.xbar_cols) / (self.adcs_per_xbar * self.adc_gsps * 1e9)
        return self.input_cycles * max(self.read_ns * 1e-9, convert_s)

    def run(self, layers: Sequence[SimLayer], *, batch: int = 1) -> EngineResult:
        """Run ``layers`` (see the module docstring for the model).

        Raises:
            ValueError: bad layers or batch.
            CrossbarCapacityError: the weights need more crossbars than the engine has.
        """
        layers = batched(layers, batch)
        places = {i: self.place(x) for i, x in enumerate(layers) if has_weights(x)}
        need = sum(p["xbars"] for p in places.values())
        if need > self.xbars:
            fit = math.ceil(need / self.xbars_per_tile)
            raise CrossbarCapacityError(
                f"{self.name}: the network's weights need {need:,} crossbars of {self.xbar_rows}x{self.xbar_cols}, "
                f"the engine has {self.xbars:,} ({self.tiles} tiles x {self.imas_per_tile} IMAs x "
                f"{self.xbars_per_ima}); use .with_tiles({fit}) (or more), fewer weight bits, or a smaller network")
        replicas = self._replicate(layers, places, self.xbars - need)
        out = [self._layer(x, places.get(i), replicas.get(i, 1)) for i, x in enumerate(layers)]
        cells = sum(p["used_cells"] * replicas[i] for i, p in places.items())
        used = sum(p["xbars"] * replicas[i] for i, p in places.items())
        notes = []
        if any(x.on_array and not has_weights(x) for x in layers):
            notes.append("attention's activation x activation products ran on the vector unit (no stationary "
                         "weights)")
        extra = {"crossbars_needed": need, "crossbars_used": used, "crossbars_available": self.xbars,
                 "cell_utilisation": cells / (used * self.xbar_rows * self.xbar_cols) if used else 0.0,
                 "program_energy_j": cells * self.program_pj_per_cell * 1e-12,
                 "program_s": self.xbar_rows * self.program_ns_per_row * 1e-9 if used else 0.0,
                 "area_mm2": self.area_mm2, "peak_power_w": self.peak_power_w, "node_nm": self.node_nm,
                 "adc_bits": self.adc_bits, "adc_bits_full_precision": self.adc_bits_full_precision}
        return EngineResult(self.name, tuple(out), batch=layers[0].batch, pipelined=True, extra=extra,
                            notes=tuple(notes))

    def _replicate(self, layers: list[SimLayer], places: dict[int, dict[str, int]], spare: int) -> dict[int, int]:
        """Greedy: the slowest layer gets one more copy while its copy fits in the spare crossbars."""
        reps = dict.fromkeys(places, 1)
        heap = [(-self._layer(layers[i], p, 1).time_s, i) for i, p in places.items()]
        heapq.heapify(heap)
        while heap:
            slowest, i = heap[0]
            cost, mvms = places[i]["xbars"], layers[i].gemm()[1]
            if cost > spare or reps[i] >= mvms:
                break
            faster = -self._layer(layers[i], places[i], reps[i] + 1).time_s
            if faster <= slowest:  # a copy does not help (the layer waits on DRAM or its vector work)
                break
            spare -= cost
            reps[i] += 1
            heapq.heapreplace(heap, (faster, i))
        return reps

    def _layer(self, layer: SimLayer, place: dict[str, int] | None, reps: int) -> EngineLayer:
        ib = self.input_bits / 8
        pj: dict[str, float] = {}
        detail: dict[str, float | int] = {}
        a_in, a_out = act_elems(layer)
        if place is None:  # the vector unit: a vector layer, or a product with no stationary weights
            ops = layer.vector_ops if not layer.on_array else 2 * layer.macs + post_ops(layer)
            cycles = math.ceil(ops / self.vector_lanes)
            compute = cycles / (self.vector_ghz * 1e9)
            moved = (a_in + a_out + layer.weight_elems + layer.fused_reads) * ib
            pj["vector"] = ops * self.vector_pj_per_op
            unit, util, used, macs, note = "vector", 0.0, 0, layer.macs, layer.note
            if layer.on_array:
                note = (layer.note + "; " if layer.note else "") + "activation x activation product: vector unit"
        else:
            g, m, k, _ = layer.gemm()
            s, rb, cb, cols = self.input_cycles, place["row_tiles"], place["col_tiles"], place["columns"]
            steps = math.ceil(m / reps)
            ops = post_ops(layer)
            vcycles = math.ceil(ops / self.vector_lanes)
            compute = steps * self.mvm_s(cols) + vcycles / (self.vector_ghz * 1e9)
            cycles = steps * s
            pj["adc"] = m * s * g * rb * cols * self.adc_pj
            pj["crossbar"] = m * s * g * rb * cb * self.xbar_pj
            pj["dac"] = m * s * g * k * cb * self.dac_pj
            pj["vector"] = ops * self.vector_pj_per_op
            # each MVM reads its K inputs from the buffer; outputs and fused operands go through it once
            moved = (m * g * k + a_out + layer.fused_reads) * ib
            alloc = place["xbars"] * self.xbar_rows * self.xbar_cols
            unit, util, used, macs, note = "crossbar", place["used_cells"] / alloc, place["xbars"] * reps, \
                layer.macs, layer.note
            detail = {"mvms": m, "mvm_s": self.mvm_s(cols), "input_cycles": s, "vector_cycles": vcycles,
                      "conversions": m * s * g * rb * cols, **place}
        pj["buffer"] = moved * self.buffer_pj_per_byte
        dram = 0.0
        if (a_in + a_out) * ib > self.buffer_bytes:  # the maps do not fit the buffers: in and out through DRAM
            dram = (a_in + a_out + layer.fused_reads) * ib
        pj["dram"] = dram * self.dram_pj_per_byte
        time = max(compute, dram / (self.dram_gbps * 1e9))
        energy = {p: v * 1e-12 for p, v in pj.items()}
        if self.static_w:
            energy["static"] = self.static_w * time
        return EngineLayer(layer.name, layer.kind, unit, cycles, time, sum(energy.values()), energy, util, used,
                           reps, macs, time - compute, dram, detail, note)


# --- built-ins ----------------------------------------------------------------------------------------------------

_I = "Shafiee et al., ISCA 2016 (ISAAC; recalled, re-check)"
_IT = f"{_I}, table of components"
_P = "Chi et al., ISCA 2016 (PRIME; recalled, re-check)"

ISAAC_LIKE = Crossbar(
    name="isaac-like", xbar_rows=128, xbar_cols=128, bits_per_cell=2, weight_bits=16, input_bits=16, dac_bits=1,
    read_ns=100.0, adc_bits=8, adc_gsps=1.28, adcs_per_xbar=1, xbars_per_ima=8, imas_per_tile=12, tiles=168,
    adc_mw=16 / 8, dac_mw=4 / (8 * 128), xbar_mw=2.4 / 8,
    ima_other_mw=0.01 + 0.2 + 1.24 + 0.23,  # sample-and-hold, shift-and-add, input and output registers
    tile_other_mw=7 + 42 / 4 + 0.52 + 0.05 + 0.4 + 1.68,  # bus, router / 4 tiles, sigmoid, S+A, max-pool, OR
    buffer_kb=64, buffer_mw=20.7, buffer_gbps=32 * 1.2, io_w=10.4,
    adc_mm2=0.0096 / 8, dac_mm2=0.00017 / (8 * 128), xbar_mm2=0.0002 / 8,
    ima_other_mm2=0.00004 + 0.00024 + 0.0021 + 0.00077,
    tile_other_mm2=0.09 + 0.151 / 4 + 0.0006 + 0.00006 + 0.00024 + 0.0032,
    buffer_mm2=0.083, io_mm2=22.88,
    vector_lanes=64, vector_ghz=1.2, vector_pj_per_op=0.05, dram_pj_per_byte=160.0, dram_gbps=4 * 6.4,
    static_w=0.0, program_pj_per_cell=10.0, program_ns_per_row=1000.0, node_nm=32,
    sources={
        "xbar_rows": f"{_I}: 128x128 crossbars", "xbar_cols": f"{_I}: 128x128 crossbars",
        "bits_per_cell": f"{_I}: 2 bits per memristor cell",
        "weight_bits": f"{_I}: 16-bit fixed-point weights over 8 columns of 2-bit cells",
        "input_bits": f"{_I}: 16-bit inputs streamed one bit per cycle",
        "dac_bits": f"{_I}: 1-bit DACs", "read_ns": f"{_I}: 100 ns crossbar read",
        "adc_bits": f"{_I}: 8-bit ADC (its weight-flipping encoding saves one bit)",
        "adc_gsps": f"{_I}: 1.28 GS/s ADC (128 columns in one 100 ns read)",
        "adcs_per_xbar": f"{_I}: 8 ADCs per IMA of 8 crossbars",
        "xbars_per_ima": f"{_I}: 8 crossbars per IMA", "imas_per_tile": f"{_I}: 12 IMAs per tile",
        "tiles": f"{_I}: 168 tiles per chip",
        "adc_mw": f"{_IT}: ADCs 16 mW for 8 per IMA", "dac_mw": f"{_IT}: DACs 4 mW for 8 x 128 per IMA",
        "xbar_mw": f"{_IT}: crossbars 2.4 mW for 8 per IMA",
        "ima_other_mw": f"{_IT}: S+H 10 uW, S+A 0.2 mW, IR 1.24 mW, OR 0.23 mW per IMA",
        "tile_other_mw": f"{_IT}: bus 7 mW, router 42 mW shared by 4 tiles, sigmoid 0.52, S+A 0.05, max-pool 0.4, "
                         "OR 1.68 mW per tile (with the IMAs and eDRAM: 330 mW a tile, 55.4 W for 168)",
        "buffer_kb": f"{_IT}: 64 KB eDRAM per tile", "buffer_mw": f"{_IT}: eDRAM 20.7 mW per tile",
        "buffer_gbps": f"derived: 256-bit eDRAM bus ({_I}) x 1.2 GHz (assumption) = 38.4 GB/s",
        "io_w": f"{_IT}: HyperTransport 4 links 10.4 W (65.8 W chip with, 55.4 W without)",
        "adc_mm2": f"{_IT}: ADCs 0.0096 mm2 for 8", "dac_mm2": f"{_IT}: DACs 0.00017 mm2 for 8 x 128",
        "xbar_mm2": f"{_IT}: crossbars 0.0002 mm2 for 8",
        "ima_other_mm2": f"{_IT}: S+H 0.00004, S+A 0.00024, IR 0.0021, OR 0.00077 mm2 per IMA",
        "tile_other_mm2": f"{_IT}: bus 0.09, router 0.151 / 4, sigmoid 0.0006, S+A 0.00006, max-pool 0.00024, OR "
                          "0.0032 mm2 per tile (0.372 mm2 a tile, 62.5 mm2 for 168)",
        "buffer_mm2": f"{_IT}: eDRAM 0.083 mm2 per tile",
        "io_mm2": f"{_IT}: HyperTransport 22.88 mm2 (85.4 mm2 chip with, 62.5 without)",
        "vector_lanes": "assumption: 64 digital lanes for pooling, element-wise and norm layers",
        "vector_ghz": "assumption: digital units at 1.2 GHz",
        "vector_pj_per_op": "assumption: a 16-bit add, interpolated from Horowitz ISSCC 2014 (45 nm, not scaled)",
        "dram_pj_per_byte": "Horowitz ISSCC 2014: 640 pJ per 32-bit DRAM access (as in Han et al.) = 160 pJ/byte",
        "dram_gbps": f"{_I}: 4 HyperTransport links of 6.4 GB/s",
        "static_w": "assumption: static power not modelled (0 W)",
        "program_pj_per_cell": "assumption: 10 pJ to program one ReRAM cell (pulses and verify)",
        "program_ns_per_row": "assumption: 1 us per row (write-verify), all crossbars in parallel",
        "node_nm": f"{_I}: 32 nm",
    },
)

_S = (65 / 32) ** 2  # PRIME's 65 nm over ISAAC's 32 nm, ideal area scaling (assumption)
_A = "assumption"
PRIME_LIKE = replace(
    ISAAC_LIKE, name="prime-like", xbar_rows=256, xbar_cols=256, bits_per_cell=4, weight_bits=8, input_bits=6,
    dac_bits=3, read_ns=30.0, adc_bits=6, adc_gsps=0.5, adcs_per_xbar=32, xbars_per_ima=64, imas_per_tile=2,
    tiles=64,
    adc_mw=ISAAC_LIKE.adc_pj / 4 * 0.5,  # ISAAC's pJ per conversion / 4 for 2 fewer bits, at 0.5 GS/s
    dac_mw=4 * ISAAC_LIKE.dac_pj / 30.0,  # 4 x ISAAC's pJ per row-read for 3 bits, over a 30 ns read
    xbar_mw=4 * ISAAC_LIKE.xbar_pj / 30.0,  # ISAAC's pJ per cell per read x 4 x the cells, over 30 ns
    ima_other_mw=64 * ISAAC_LIKE.ima_other_mw / 8, ima_other_mm2=64 * ISAAC_LIKE.ima_other_mm2 / 8 * _S,
    adc_mm2=ISAAC_LIKE.adc_mm2 / 4 * _S, dac_mm2=ISAAC_LIKE.dac_mm2 * 4 * _S, xbar_mm2=ISAAC_LIKE.xbar_mm2 * 4 * _S,
    buffer_mm2=ISAAC_LIKE.buffer_mm2 * _S, tile_other_mm2=ISAAC_LIKE.tile_other_mm2 * _S, io_w=0.0, io_mm2=0.0,
    program_pj_per_cell=40.0, program_ns_per_row=4000.0, node_nm=65,
    sources={
        **ISAAC_LIKE.sources,
        "xbar_rows": f"{_P}: 256x256 mats", "xbar_cols": f"{_P}: 256x256 mats",
        "bits_per_cell": f"{_P}: 4-bit MLC cells", "weight_bits": f"{_P}: 8-bit weights from two 4-bit cells",
        "input_bits": f"{_P}: 6-bit inputs composed of two 3-bit phases", "dac_bits": f"{_P}: 3-bit input drivers",
        "adc_bits": f"{_P}: 6-bit reconfigurable sense amplifiers as ADCs",
        "read_ns": f"{_A}: 30 ns ReRAM read (PRIME models its ReRAM with NVSim; the figure is not recalled)",
        "adc_gsps": f"{_A}: a sense amplifier resolves 6 bits in 2 ns",
        "adcs_per_xbar": f"{_A}: one sense amplifier per 8 bitlines",
        "xbars_per_ima": f"{_A}: 64 mats per full-function subarray (the 'IMA' level)",
        "imas_per_tile": f"{_P}: 2 full-function subarrays per bank (the 'tile' level)",
        "tiles": f"{_A}: 64 banks (8 chips x 8 banks)",
        "adc_mw": f"{_A}: ISAAC's 1.5625 pJ per 8-bit conversion / 4 for 6 bits, at 0.5 GS/s",
        "dac_mw": f"{_A}: 4 x ISAAC's 0.39 pJ per row-read for 3-bit drivers, over 30 ns",
        "xbar_mw": f"{_A}: ISAAC's energy per cell per read (30 pJ / 16384 cells) x 65536 cells, over 30 ns",
        "ima_other_mw": f"{_A}: ISAAC's IMA periphery per crossbar x 64",
        "dram_gbps": f"{_A}: 25.6 GB/s, as ISAAC's links",
        "tile_other_mw": f"{_A}: as ISAAC's tile", "buffer_kb": f"{_A}: a 64 KB buffer subarray per bank",
        "buffer_mw": f"{_A}: as ISAAC's eDRAM", "buffer_gbps": f"{_A}: as ISAAC's eDRAM",
        "io_w": f"{_A}: in main memory, no links of its own", "io_mm2": f"{_A}: in main memory, no links of its own",
        "adc_mm2": f"{_A}: ISAAC's ADC / 4 (2 fewer bits) x (65/32)^2", "dac_mm2": f"{_A}: ISAAC's DAC x 4 x (65/32)^2",
        "xbar_mm2": f"{_A}: ISAAC's crossbar x 4 (cells) x (65/32)^2",
        "ima_other_mm2": f"{_A}: ISAAC's IMA periphery per crossbar x 64 x (65/32)^2",
        "buffer_mm2": f"{_A}: ISAAC's eDRAM x (65/32)^2", "tile_other_mm2": f"{_A}: ISAAC's tile x (65/32)^2",
        "program_pj_per_cell": f"{_A}: 40 pJ per 4-bit MLC cell (more verify pulses than 2-bit)",
        "program_ns_per_row": f"{_A}: 4 us per row (MLC write-verify)",
        "node_nm": f"{_P}: 65 nm",
    },
)
