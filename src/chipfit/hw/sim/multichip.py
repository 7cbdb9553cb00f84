"""A network split across several chips as a layer pipeline, linked as in DaDianNao.

The layers are cut into K contiguous stages balanced by cycles (the partition that minimises the slowest stage);
stage i runs on chip i and sends the activation that crosses its cut to chip i + 1 over the chip-to-chip links, all
links of a chip used together (DaDianNao: HyperTransport 2.0, 6.4 GB/s per link, 4 links; Chen et al., MICRO 2014).
A stage's period is its compute time plus its outgoing transfer (no overlap assumed, conservative); the pipeline
delivers one batch per slowest period and the latency of a batch is the sum over stages. Every layer runs on exactly
one chip, so MACs are conserved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# DaDianNao's links, used when an architecture names none.
DADIANNAO_LINK_BYTES_PER_S = 6.4e9
DADIANNAO_LINKS = 4
DADIANNAO_SOURCE = "Chen et al., MICRO 2014: HyperTransport 2.0, 6.4 GB/s per link, 4 links"


@dataclass
class Stage:
    """One chip's share: layers [first, last], its cycles and the bytes it sends on."""

    chip: int
    first: int
    last: int
    cycles: int
    compute_s: float
    transfer_bytes: float
    transfer_s: float
    macs: int

    @property
    def period_s(self) -> float:
        return self.compute_s + self.transfer_s


@dataclass
class Pipeline:
    """A layer pipeline over ``len(stages)`` chips."""

    stages: list[Stage]
    link_bytes_per_s: float
    link_source: str
    batch: int
    notes: list[str] = field(default_factory=list)

    @property
    def period_s(self) -> float:
        return max(s.period_s for s in self.stages)

    @property
    def latency_s(self) -> float:
        return sum(s.period_s for s in self.stages)

    @property
    def inferences_per_s(self) -> float:
        return self.batch / self.period_s if self.period_s else float("inf")

    @property
    def bottleneck(self) -> int:
        return max(self.stages, key=lambda s: s.period_s).chip

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.stages)

    def to_dict(self) -> dict:
        return {"chips": len(self.stages), "link_bytes_per_s": self.link_bytes_per_s, "link_source": self.link_source,
                "period_s": self.period_s, "latency_s": self.latency_s, "inferences_per_s": self.inferences_per_s,
                "bottleneck_chip": self.bottleneck, "stages": [asdict(s) | {"period_s": s.period_s}
                                                                for s in self.stages], "notes": self.notes}


def balanced_cuts(cycles: list[int], k: int) -> list[tuple[int, int]]:
    """Contiguous [first, last] ranges of ``cycles`` in at most ``k`` parts minimising the largest part's sum."""
    n = len(cycles)
    k = max(1, min(k, n))

    def parts_needed(cap: int) -> int:
        parts, run = 1, 0
        for c in cycles:
            if run + c > cap:
                parts, run = parts + 1, c
            else:
                run += c
        return parts

    lo, hi = max(cycles, default=0), sum(cycles)
    while lo < hi:  # smallest cap that fits in k parts
        mid = (lo + hi) // 2
        if parts_needed(mid) <= k:
            hi = mid
        else:
            lo = mid + 1
    cuts, start, run = [], 0, 0
    for i, c in enumerate(cycles):
        # leave enough layers for the parts still to come, one each at least
        if i > start and (run + c > lo or n - i < k - len(cuts)):
            cuts.append((start, i - 1))
            start, run = i, 0
        run += c
    cuts.append((start, n - 1))
    return cuts


def pipeline(cycles: list[int], out_bytes: list[float], macs: list[int], *, chips: int, clock_hz: float,
             link_bytes_per_s: float | None, links: int, batch: int = 1) -> Pipeline:
    """Split layers (their total cycles, output bytes and MACs) over ``chips`` chips."""
    notes = []
    if link_bytes_per_s is None:
        link_bytes_per_s, links, source = DADIANNAO_LINK_BYTES_PER_S, DADIANNAO_LINKS, DADIANNAO_SOURCE
        notes.append(f"the architecture names no chip-to-chip link; using DaDianNao's ({source})")
    else:
        source = f"architecture: {links} link(s) x {link_bytes_per_s / 1e9:g} GB/s"
    bw = link_bytes_per_s * links
    if chips > len(cycles):
        notes.append(f"{chips} chips asked for but only {len(cycles)} layers: using {len(cycles)}")
    stages = []
    cuts = balanced_cuts(cycles, chips)
    for i, (a, b) in enumerate(cuts):
        cyc = sum(cycles[a:b + 1])
        send = out_bytes[b] if i < len(cuts) - 1 else 0.0
        stages.append(Stage(i, a, b, cyc, cyc / clock_hz, send, send / bw, sum(macs[a:b + 1])))
    return Pipeline(stages, bw, source, batch, notes)
