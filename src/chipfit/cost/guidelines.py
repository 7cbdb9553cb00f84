"""The ShuffleNetV2 design guidelines, as the Horizon Robotics design talk restates them, checked on a profile.

- G1: equal input and output channels minimise a 1x1 conv's memory access cost (MAC) for its FLOPs. With
  B = h*w*c1*c2 (its multiply-adds) and everything in cache, MAC = h*w*(c1 + c2) + c1*c2 >= 2*sqrt(h*w*B) + B/(h*w),
  with equality iff c1 = c2. We report each 1x1 conv's MAC against that bound (elements, per image).
- G2: more groups raise memory access per FLOP. Each grouped/depthwise conv's bytes per FLOP (from its cost record)
  is compared with the dense conv of the same shape (g times the weights and the FLOPs, the same maps); extra
  groups only hurt where the op is memory-bound on the chip.
- G3: fragmentation. Parallel branches are fine, serial chains of small ops are not: we report the serial chains
  of MAC-free ops and how many ops could run in parallel.
- G4: element-wise ops (activations, adds, multiplies) are cheap in FLOPs, not in bytes or time: their share of
  the estimated time, unfused and after fusion (their share of the bytes moved when no chip is given).

Counts come from the profile's cost records; times and bounds, when given, from a hardware estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import sqrt
from typing import Any

from chipfit.cost.profile import Layer, Profile

G1_WARN = 1.2  # MAC more than 20% above the lower bound
G3_CHAIN = 3  # a serial chain of this many MAC-free ops is reported
G4_WARN = 0.2  # element-wise ops take more than 20% of the time


def g1_mac_bound(h: int, w: int, c1: int, c2: int) -> tuple[float, float]:
    """(MAC, lower bound) in elements for a 1x1 conv on an h x w map, c1 -> c2 channels (ShuffleNetV2 eq. 1)."""
    hw = h * w
    b = hw * c1 * c2
    return hw * (c1 + c2) + c1 * c2, 2 * sqrt(hw * b) + b / hw


def check(profile: Profile, estimates: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate G1-G4 on ``profile``; returns per-guideline details and a list of warnings.

    Args:
        profile: the counts.
        estimates: ``fused`` / ``unfused`` -> a hardware estimate (``chipfit.hw.estimate.Estimate``) whose layers
            align with the profile's layers of that mode; without them G2 and G4 work on counts alone.
    """
    estimates = estimates or {}
    unfused = _timing(profile.layers_unfused, estimates.get("unfused"))
    fused = _timing(profile.layers_fused, estimates.get("fused"))
    warnings: list[str] = []
    out = {"G1": g1(profile, warnings), "G2": g2(profile, unfused, warnings), "G3": g3(profile, warnings),
           "G4": g4(profile, unfused, fused, warnings)}
    out["warnings"] = warnings
    return out


def _timing(layers: list[Layer], estimate: Any) -> list[tuple[float, str | None]] | None:
    """(latency, bound) per layer from an estimate of that mode, or ``None``."""
    if estimate is None or len(estimate.layers) != len(layers):
        return None
    return [(x.latency_s, x.bound) for x in estimate.layers]


def g1(profile: Profile, warnings: list[str]) -> dict[str, Any]:
    """Each stride-1 1x1 dense conv's memory access cost against the ShuffleNetV2 bound."""
    nodes = profile.graph.nodes
    convs = []
    for layer in profile.layers_unfused:
        n = nodes[layer.nodes[0]]
        if n.kind != "conv" or n.attrs.get("transposed") or n.attrs.get("groups", 1) != 1:
            continue
        w = n.inputs[1].shape
        if len(w) != 4 or w[2:] != (1, 1) or n.attrs.get("stride", (1, 1)) != (1, 1):
            continue
        _, c2, h, wd = n.outputs[0].shape
        c1 = w[1]
        mac, bound = g1_mac_bound(h, wd, c1, c2)
        convs.append({"layer": layer.name, "c_in": c1, "c_out": c2, "hw": [h, wd], "mac": mac, "bound": bound,
                      "ratio": mac / bound})
    bad = [r for r in convs if r["ratio"] > G1_WARN]
    if bad:
        worst = max(bad, key=lambda r: r["ratio"])
        warnings.append(f"G1: {len(bad)} of {len(convs)} 1x1 convs access >{G1_WARN:.1f}x the minimum memory for "
                        f"their FLOPs (unequal channels; worst {worst['layer']} {worst['c_in']}->{worst['c_out']}, "
                        f"{worst['ratio']:.2f}x)")
    return {"convs": convs, "flagged": len(bad)}


def g2(profile: Profile, timing: list[tuple[float, str | None]] | None, warnings: list[str]) -> dict[str, Any]:
    """Bytes per FLOP of each grouped/depthwise conv against the dense conv of the same shape."""
    nodes = profile.graph.nodes
    convs = []
    for i, layer in enumerate(profile.layers_unfused):
        n = nodes[layer.nodes[0]]
        g = n.attrs.get("groups", 1)
        if n.kind != "conv" or g == 1 or n.attrs.get("transposed") or not layer.cost.flops:
            continue
        c = layer.cost
        weight = n.inputs[1].nbytes(profile.precision)
        grouped = c.bytes / c.flops
        dense = (c.bytes + weight * (g - 1)) / (c.flops * g)  # g x the weights and the FLOPs, the same maps
        c_in, c_out = n.inputs[0].shape[1], n.outputs[0].shape[1]
        convs.append({"layer": layer.name, "groups": g, "depthwise": g == c_in == c_out,
                      "bytes_per_flop": grouped, "dense_bytes_per_flop": dense, "ratio": grouped / dense,
                      "bound": timing[i][1] if timing else None})
    if convs:
        mem = [r for r in convs if r["bound"] == "memory"] if timing else convs
        if mem:
            warnings.append(f"G2: {len(mem)} grouped/depthwise convs move {_median([r['ratio'] for r in mem]):.0f}x "
                            f"(median) the bytes per FLOP of a dense conv" +
                            (" and are memory-bound on this chip" if timing else ""))
    return {"convs": convs}


def g3(profile: Profile, warnings: list[str]) -> dict[str, Any]:
    """Serial chains of MAC-free ops, and how much of the graph could run in parallel."""
    nodes = profile.graph.nodes
    consumers = profile.graph.consumers()
    deps = profile.graph.deps()
    real = {layer.nodes[0] for layer in profile.layers_unfused}
    small = {i for i in real if nodes[i].macs == 0}

    def only_next(i: int) -> int | None:
        cs = [c for c in consumers[i] if c in real]
        if len(cs) == 1 and len([d for d in deps[cs[0]] if d in real]) == 1:
            return cs[0]
        return None

    starts = [i for i in sorted(small)
              if not any(d in small and only_next(d) == i for d in deps[i])]
    chains = []
    for s in starts:
        length, cur = 1, s
        while (nxt := only_next(cur)) is not None and nxt in small:
            length, cur = length + 1, nxt
        if length >= G3_CHAIN:
            chains.append({"start": nodes[s].name, "length": length})
    depth, width = profile.graph.depth_and_width()
    levels = profile.graph.levels()
    per_level: dict[int, int] = {}
    for i in real:
        per_level[levels[i]] = per_level.get(levels[i], 0) + 1
    out = {"ops": len(real), "depth": depth, "width": width,
           "serial_fraction": depth / len(real) if real else 0.0,
           "parallel_levels": sum(1 for v in per_level.values() if v > 1),
           "small_op_chains": len(chains), "longest_small_chain": max((c["length"] for c in chains), default=0),
           "ops_in_small_chains": sum(c["length"] for c in chains), "chains": chains[:20]}
    if chains:
        warnings.append(f"G3: {len(chains)} serial chains of >= {G3_CHAIN} MAC-free ops "
                        f"({out['ops_in_small_chains']} ops, longest {out['longest_small_chain']}); "
                        f"graph depth {depth} of {len(real)} ops, at most {width} in parallel")
    return out


def g4(profile: Profile, unfused: list[tuple[float, str | None]] | None,
       fused: list[tuple[float, str | None]] | None, warnings: list[str]) -> dict[str, Any]:
    """The share of element-wise ops in the estimated time (or the bytes moved), unfused and fused."""
    timed = unfused is not None and fused is not None

    def share(layers: list[Layer], timing: list[tuple[float, str | None]] | None) -> float:
        weights = [t for t, _ in timing] if timed and timing else [layer.cost.bytes for layer in layers]
        tot = sum(weights)
        elt = sum(w for w, layer in zip(weights, layers, strict=True) if layer.op_type in ("eltwise", "act"))
        return elt / tot if tot else 0.0

    out = {"measure": "estimated time" if timed else "bytes moved (no chip given)",
           "eltwise_share_unfused": share(profile.layers_unfused, unfused),
           "eltwise_share_fused": share(profile.layers_fused, fused)}
    if out["eltwise_share_unfused"] > G4_WARN:
        warnings.append(f"G4: element-wise ops take {out['eltwise_share_unfused']:.0%} of the {out['measure']} "
                        f"unfused, {out['eltwise_share_fused']:.0%} after fusion")
    return out


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if s else 0.0
