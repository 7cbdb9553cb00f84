"""Area and power of a systolic-array accelerator (:class:`~chipfit.hw.array.Arch`): designs held to mm2 and W.

The model adds up parts, each from a cited figure or a stated assumption (:data:`TECH_45NM`'s ``sources``):

- PEs: ``rows x cols`` of (multiplier of ``word_bits`` + accumulator adder of ``2 x word_bits + 8`` bits) x a PE
  overhead factor for pipeline registers, control, clock tree and placement density. Multiplier and adder areas are
  Horowitz's 45 nm figures (ISSCC 2014), interpolated in width; N:M and unstructured sparsity support add to each PE.
- SRAM: bits x the 45 nm 6T cell / array efficiency (periphery, sense amps, redundancy).
- The vector unit: ``vector_lanes`` of a 16-bit multiply-add, with the PE overhead.
- The DRAM interface (PHY + controller, by GB/s) and the chip-to-chip links (by GB/s, counted when ``chips > 1``).
- Top-level control, NoC and pads: a fraction of the above.

Other nodes scale area by ``(node / 45)^2`` and energy by ``node / 45`` (assumption: ideal scaling; SRAM and analog
shrink less in practice). Energy tables (:class:`~chipfit.hw.EnergyTable`) are 45 nm figures by default.

Power: ``peak_w`` is the dynamic power with every PE busy (a MAC per PE per cycle, SRAM feeding the array's edges,
DRAM at full bandwidth, the vector unit busy) plus leakage: what a TDP bounds. ``leakage_w`` is leakage per mm2 x
area; :func:`static_energy_j` charges it over an inference's latency, which the simulator's dynamic energy leaves out.

Checks against published dies (``tests/hw/test_area.py``): the PE overhead factor is fitted to one figure, the TPU
v1's matrix unit (24% of a < 331 mm2 die at 28 nm, Jouppi et al., ISCA 2017, recalled); the same model gives Eyeriss
v1 (12.25 mm2 core at 65 nm, Chen et al., JSSC 2017) about half its area: its row-stationary PEs carry their own
control and scratchpad logic that a lean systolic PE does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chipfit.hw.array import Arch

_H = "Horowitz ISSCC 2014, 45 nm"


@dataclass(frozen=True)
class Tech:
    """Area and leakage figures of one process (45 nm), each with its source in ``sources``.

    Attributes:
        node_nm: the process the figures belong to.
        mult_um2: integer multiplier area by operand bits (others interpolated as a power law in width).
        add_um2: integer adder area by bits (others linear in width).
        pe_overhead: PE area / (multiplier + accumulator area).
        sparsity_overhead: extra PE area fraction by sparsity kind supported.
        sram_um2_per_bit: SRAM area per bit, periphery included.
        dram_mm2_per_gbps: DRAM PHY and controller area per GB/s of bandwidth.
        link_mm2_per_gbps: chip-to-chip link area per GB/s.
        top_overhead: control, NoC and pads as a fraction of the rest.
        leakage_w_per_mm2: leakage power density.
        sources: field -> citation.
    """

    node_nm: float
    mult_um2: Mapping[int, float]
    add_um2: Mapping[int, float]
    pe_overhead: float
    sparsity_overhead: Mapping[str, float]
    sram_um2_per_bit: float
    dram_mm2_per_gbps: float
    link_mm2_per_gbps: float
    top_overhead: float
    leakage_w_per_mm2: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def mult(self, bits: int) -> float:
        """Multiplier area in um2 for ``bits``-bit operands: the table, else a power law through 8 and 32 bits."""
        if bits in self.mult_um2:
            return float(self.mult_um2[bits])
        a, b = self.mult_um2[8], self.mult_um2[32]
        return a * (bits / 8) ** (math.log(b / a) / math.log(4))

    def add(self, bits: int) -> float:
        """Adder area in um2: the table, else linear in width through 8 and 32 bits."""
        if bits in self.add_um2:
            return float(self.add_um2[bits])
        a, b = self.add_um2[8], self.add_um2[32]
        return a + (b - a) * (bits - 8) / 24


TECH_45NM = Tech(
    node_nm=45,
    mult_um2={8: 282.0, 32: 3495.0},
    add_um2={8: 36.0, 32: 137.0},
    pe_overhead=8.0,
    sparsity_overhead={"nm": 0.10, "unstructured": 0.25},
    sram_um2_per_bit=0.346 / 0.5,
    dram_mm2_per_gbps=0.15,
    link_mm2_per_gbps=1.8,
    top_overhead=0.10,
    leakage_w_per_mm2=0.01,
    sources={
        "mult_um2": f"{_H}: 8-bit multiply 282 um2, 32-bit multiply 3495 um2; other widths a power law through them "
                    "(assumption)",
        "add_um2": f"{_H}: 8-bit add 36 um2, 32-bit add 137 um2; other widths linear (assumption)",
        "pe_overhead": "derived: fitted so the TPU v1's 256x256 int8 array comes to its matrix unit's 24% of a "
                       "331 mm2 die at 28 nm (Jouppi et al., ISCA 2017, recalled, re-check): registers, control, clock "
                       "tree and placement density make a PE 8x its multiplier and adder",
        "sparsity_overhead": "assumption: N:M support (an activation multiplexer per PE) +10%, unstructured (index "
                             "decoding and activation selection, as Cambricon-X's indexing module) +25% PE area",
        "sram_um2_per_bit": "Intel 45 nm 6T SRAM cell 0.346 um2 (Mistry et al., IEDM 2007), over an assumed array "
                            "efficiency of 0.5 (decoders, sense amplifiers, redundancy, banking)",
        "dram_mm2_per_gbps": "assumption: an LPDDR4 x32 PHY and controller of about 8 GB/s take about 1.2 mm2 at 45 nm",
        "link_mm2_per_gbps": "derived from ISAAC (Shafiee et al., ISCA 2016, recalled, re-check): HyperTransport "
                             "22.88 mm2 for 4 links of 6.4 GB/s at 32 nm = 0.89 mm2 per GB/s, x (45/32)^2 = 1.8",
        "top_overhead": "assumption: control, network on chip and pads add 10%",
        "leakage_w_per_mm2": "assumption: 10 mW per mm2, a general-purpose 45 nm process at 0.9 V (low-power processes "
                             "leak less)",
        "node_scaling": "assumption: area x (node/45)^2, energy x node/45 (ideal scaling)",
    },
)


def area_factor(node_nm: float, tech: Tech = TECH_45NM) -> float:
    """Area at ``node_nm`` / area at the tech's node (ideal scaling, an assumption)."""
    if not node_nm > 0:
        raise ValueError(f"node_nm must be a positive number of nanometres, not {node_nm!r}")
    return (node_nm / tech.node_nm) ** 2


def energy_factor(node_nm: float, tech: Tech = TECH_45NM) -> float:
    """Energy per operation at ``node_nm`` / at the tech's node (ideal scaling, an assumption)."""
    if not node_nm > 0:
        raise ValueError(f"node_nm must be a positive number of nanometres, not {node_nm!r}")
    return node_nm / tech.node_nm


@dataclass(frozen=True)
class Area:
    """An accelerator's area in mm2, by part (``total_mm2`` is one chip; ``chips`` of them: ``all_chips_mm2``)."""

    pe_mm2: float
    sram_mm2: float
    vector_mm2: float
    dram_mm2: float
    link_mm2: float
    top_mm2: float
    node_nm: float
    chips: int = 1

    @property
    def total_mm2(self) -> float:
        return self.pe_mm2 + self.sram_mm2 + self.vector_mm2 + self.dram_mm2 + self.link_mm2 + self.top_mm2

    @property
    def all_chips_mm2(self) -> float:
        return self.total_mm2 * self.chips

    def to_dict(self) -> dict[str, Any]:
        return {"pe_mm2": self.pe_mm2, "sram_mm2": self.sram_mm2, "vector_mm2": self.vector_mm2,
                "dram_mm2": self.dram_mm2, "link_mm2": self.link_mm2, "top_mm2": self.top_mm2,
                "total_mm2": self.total_mm2, "chips": self.chips, "all_chips_mm2": self.all_chips_mm2,
                "node_nm": self.node_nm}


def pe_um2(word_bits: int, sparsity: tuple[str, ...] = (), tech: Tech = TECH_45NM) -> float:
    """One PE at the tech's node: (multiplier + accumulator) x overhead, plus sparsity support."""
    if word_bits < 1:
        raise ValueError(f"word_bits must be at least 1, not {word_bits}")
    base = (tech.mult(word_bits) + tech.add(2 * word_bits + 8)) * tech.pe_overhead
    return base * (1 + sum(tech.sparsity_overhead.get(k, 0.0) for k in sparsity))


def area(arch: Arch, *, node_nm: float | None = None, chips: int = 1, tech: Tech = TECH_45NM) -> Area:
    """The area of ``arch``, one chip, at ``node_nm`` (default: the tech's 45 nm).

    Args:
        arch: the array (rows, cols, word bits, SRAM, vector lanes, DRAM and link bandwidth, sparsity kinds).
        node_nm: the process to scale to.
        chips: chips in a multi-chip pipeline; each carries its links (none for one chip).
        tech: the figures.
    """
    if chips < 1:
        raise ValueError(f"chips must be at least 1, not {chips}")
    f = area_factor(tech.node_nm if node_nm is None else node_nm, tech)
    pe = arch.rows * arch.cols * pe_um2(arch.word_bits, arch.sparsity, tech) * 1e-6
    sram_bits = 8 * (arch.ifmap_sram_bytes + arch.filter_sram_bytes + arch.ofmap_sram_bytes)
    sram = sram_bits * tech.sram_um2_per_bit * 1e-6
    vec = arch.vector_lanes * (tech.mult(16) + tech.add(32)) * tech.pe_overhead * 1e-6
    bw = arch.dram_bandwidth_bytes_per_s
    dram = 0.0 if bw is None else bw / 1e9 * tech.dram_mm2_per_gbps
    link = 0.0
    if chips > 1 and arch.link_bandwidth_bytes_per_s:
        link = arch.links * arch.link_bandwidth_bytes_per_s / 1e9 * tech.link_mm2_per_gbps
    top = (pe + sram + vec + dram + link) * tech.top_overhead
    return Area(pe * f, sram * f, vec * f, dram * f, link * f, top * f, tech.node_nm if node_nm is None else node_nm,
                chips)


@dataclass(frozen=True)
class Power:
    """Peak dynamic power by part and leakage, in W, one chip."""

    mac_w: float
    sram_w: float
    dram_w: float
    vector_w: float
    leakage_w: float

    @property
    def peak_w(self) -> float:
        return self.mac_w + self.sram_w + self.dram_w + self.vector_w + self.leakage_w

    def to_dict(self) -> dict[str, float]:
        return {"mac_w": self.mac_w, "sram_w": self.sram_w, "dram_w": self.dram_w, "vector_w": self.vector_w,
                "leakage_w": self.leakage_w, "peak_w": self.peak_w}


_DTYPE = {4: "int4", 8: "int8", 16: "int16", 32: "int32"}


def power(arch: Arch, *, node_nm: float | None = None, tech: Tech = TECH_45NM) -> Power:
    """Peak power of one chip: every PE doing a MAC each cycle at ``word_bits``, ``rows + cols`` words a cycle to or
    from SRAM (a weight-stationary array's input edge and output edge), DRAM at full bandwidth, every vector lane
    busy, plus leakage. Energies come from the array's table (45 nm figures), scaled to ``node_nm``."""
    node = tech.node_nm if node_nm is None else node_nm
    ef = energy_factor(node, tech)
    e = arch.energy
    dtype = _DTYPE.get(arch.word_bits, "int8" if arch.word_bits < 8 else "int32")
    hz = arch.clock_hz
    mac = arch.rows * arch.cols * e.mac_pj[dtype] * 1e-12 * hz * ef
    sram = (arch.rows + arch.cols) * arch.word_bits / 8 * e.sram_pj_per_byte * 1e-12 * hz * ef
    bw = arch.dram_bandwidth_bytes_per_s
    dram = 0.0 if bw is None else bw * e.dram_pj_per_byte * 1e-12  # the DRAM's own energy does not scale with the node
    vec = arch.vector_lanes * e.add_pj.get(dtype, e.add_pj["int8"]) * 1e-12 * hz * ef
    leak = area(arch, node_nm=node, tech=tech).total_mm2 * tech.leakage_w_per_mm2
    return Power(mac, sram, dram, vec, leak)


def static_energy_j(arch: Arch, latency_s: float, *, node_nm: float | None = None, chips: int = 1,
                    tech: Tech = TECH_45NM) -> float:
    """Leakage energy over ``latency_s`` of ``chips`` chips (the simulator's energy is dynamic only)."""
    return area(arch, node_nm=node_nm, chips=chips, tech=tech).all_chips_mm2 * tech.leakage_w_per_mm2 * latency_s


__all__ = ["TECH_45NM", "Area", "Power", "Tech", "area", "area_factor", "energy_factor", "pe_um2", "power",
           "static_energy_j"]
