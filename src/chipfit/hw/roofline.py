"""Roofline latency and energy of a profiled network on a chip.

Per execution unit (one op, or a fused chain):

- compute time = FLOPs / (peak ops/s at the precision's compute dtype x the chip's efficiency);
- memory time = DRAM bytes / DRAM bandwidth (and on-chip bytes / SRAM bandwidth when the profile gives one);
- latency = max(compute, memory) + the chip's fixed per-op overhead; the unit is compute-bound or memory-bound
  by which term wins, or overhead-bound when the overhead exceeds both;
- energy = MACs x E_mac + (FLOPs - 2 MACs) x E_add + DRAM bytes x E_dram + on-chip bytes x E_sram.

Memory assumption (stated, not measured): every weight streams from DRAM once per inference; an activation
stays in on-chip memory when it fits in half of it (the other half holding weight tiles), otherwise it goes
through DRAM; the network's inputs are read from and its outputs written to DRAM. On a chip with no DRAM
(DaDianNao keeps the whole model in eDRAM) nothing goes off chip. Every byte an op touches passes through on-chip
memory once (the SRAM energy term). The accelerator simulator (``chipfit simulate``) models buffers in detail.

The network's time is the serial sum of its units, or the critical path through the op graph when the chip
runs independent ops concurrently (``concurrent_ops``).
"""

from __future__ import annotations

from chipfit.cost.profile import Layer, Profile
from chipfit.hw.chip import HOROWITZ_45NM, Chip
from chipfit.hw.estimate import Estimate, LayerEstimate

ACTIVATION_SHARE = 0.5


def _energy_pj(table: dict[str, float], default: dict[str, float], dtype: str) -> float:
    if dtype in table:
        return table[dtype]
    if dtype in default:
        return default[dtype]
    raise ValueError(f"no energy figure for {dtype}; add it to the chip profile's energy table")


def estimate(profile: Profile, chip: Chip, fused: bool | None = None) -> Estimate:
    """Roofline latency, energy, DRAM bytes and bound of every unit of ``profile`` on ``chip``.

    Args:
        profile: counts of the network (not changed).
        chip: the target.
        fused: the execution mode to estimate (default: the profile's).
    """
    fused = profile.fused if fused is None else fused
    precision = profile.precision
    dtype = precision.compute
    peak = chip.peak(dtype) * chip.efficiency
    dram_bw = chip.dram_bandwidth_bytes_per_s
    sram_bw = chip.sram_bandwidth_bytes_per_s
    e_mac = _energy_pj(chip.energy.mac_pj, HOROWITZ_45NM.mac_pj, dtype) * 1e-12
    e_add = _energy_pj(chip.energy.add_pj, HOROWITZ_45NM.add_pj, dtype) * 1e-12
    e_dram = chip.energy.dram_pj_per_byte * 1e-12
    e_sram = chip.energy.sram_pj_per_byte * 1e-12
    on_chip_limit = chip.onchip_bytes * ACTIVATION_SHARE
    boundary = {t.buffer for t in profile.graph.inputs} | {t.buffer for t in profile.graph.outputs}

    def off_chip(t) -> bool:
        if dram_bw is None:
            return False
        if t.role in ("weight", "const") or t.buffer in boundary:
            return True
        return t.nbytes(precision) > on_chip_limit

    def timed(layer: Layer) -> LayerEstimate:
        c = layer.cost
        dram = sum(t.nbytes(precision) for t in layer.reads if off_chip(t))
        dram += sum(t.nbytes(precision) for t in layer.writes if off_chip(t))
        compute_s = c.flops / peak if c.flops else 0.0
        memory_s = dram / dram_bw if dram_bw else 0.0
        if sram_bw:
            memory_s = max(memory_s, c.bytes / sram_bw)
        latency = max(compute_s, memory_s) + chip.op_overhead_s
        energy = c.macs * e_mac + max(c.flops - 2 * c.macs, 0) * e_add + dram * e_dram + c.bytes * e_sram
        if chip.op_overhead_s > max(compute_s, memory_s):
            bound = "overhead"
        else:
            bound = "compute" if compute_s >= memory_s else "memory"
        return LayerEstimate(layer.name, latency, energy, bound, compute_s, memory_s, dram)

    layers = profile.layers_fused if fused else profile.layers_unfused
    timed_layers = tuple(timed(layer) for layer in layers)
    notes = []
    if dram_bw is None and profile.memory["weight_bytes"] > chip.onchip_bytes:
        notes.append(
            f"{chip.name} has no DRAM, but the weights ({profile.memory['weight_bytes'] / 1e6:.1f} MB) exceed its "
            f"on-chip memory ({chip.onchip_bytes / 1e6:.1f} MB): split the model across chips (chipfit simulate)."
        )
    latency = network_latency(profile, layers, [x.latency_s for x in timed_layers], chip.concurrent_ops)
    return Estimate("roofline", chip.name, profile.model_name, precision.name, fused, latency,
                    sum(x.energy_j for x in timed_layers), timed_layers, tuple(notes), {"chip": chip.to_dict()})


def network_latency(profile: Profile, layers: list[Layer], latencies: list[float], concurrent: bool) -> float:
    """Serial sum of the units' latencies, or the longest latency-weighted path when ops may overlap."""
    if not concurrent:
        return sum(latencies)
    unit_of = {i: k for k, layer in enumerate(layers) for i in layer.nodes}
    deps = profile.graph.deps()
    nodes = profile.graph.nodes
    # a view inherits its producers; resolve each node to the units it depends on
    node_units: dict[int, set[int]] = {}
    for n in nodes:
        units: set[int] = set()
        for d in deps[n.idx]:
            units |= {unit_of[d]} if d in unit_of else node_units.get(d, set())
        node_units[n.idx] = units
    finish = [0.0] * len(layers)
    for k, layer in enumerate(layers):
        start = 0.0
        for i in layer.nodes:
            for u in node_units[i]:
                if u != k:
                    start = max(start, finish[u])
        finish[k] = start + latencies[k]
    return max(finish, default=0.0)
