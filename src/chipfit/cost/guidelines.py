"""The ShuffleNetV2 design guidelines, as the Horizon Robotics design talk restates them, checked on a profile.

- G1: equal input and output channels minimise a 1x1 conv's memory access cost (MAC) for its FLOPs. With
  B = h*w*c1*c2 (its multiply-adds) and everything in cache, MAC = h*w*(c1 + c2) + c1*c2 >= 2*sqrt(h*w*B) + B/(h*w),
  with equality iff c1 = c2. We report each 1x1 conv's MAC against that bound (elements, per image).
- G2: more groups raise memory access per FLOP. Each grouped/depthwise conv's bytes-per-FLOP is compared with a
  dense conv of the same shape; extra groups only hurt where the op is memory-bound on the chip.
- G3: fragmentation. Parallel branches are fine, serial chains of small ops are not: we report the serial chains
  of MAC-free ops and how many ops could run in parallel.
- G4: element-wise ops (activations, adds, multiplies) are cheap in FLOPs, not in bytes or time: their share of
  the estimated time, unfused and after fusion.
"""

from __future__ import annotations

from math import sqrt
from typing import Any

from chipfit.cost.profile import Profile

G1_WARN = 1.2  # MAC more than 20% above the lower bound
G3_CHAIN = 3  # a serial chain of this many MAC-free ops is reported
G4_WARN = 0.2  # element-wise ops take more than 20% of the time


def g1_mac_bound(h: int, w: int, c1: int, c2: int) -> tuple[float, float]:
    """(MAC, lower bound) in elements for a 1x1 conv on an h x w map, c1 -> c2 channels (ShuffleNetV2 eq. 1)."""
    hw = h * w
    b = hw * c1 * c2
    return hw * (c1 + c2) + c1 * c2, 2 * sqrt(hw * b) + b / hw


def check(profile: Profile) -> dict[str, Any]:
    """Evaluate G1-G4 on ``profile``; returns per-guideline details and a list of warnings."""
    nodes = profile.graph.nodes
    warnings: list[str] = []
    timed = profile.hardware is not None

    # G1
    g1 = []
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
        g1.append({"layer": layer.name, "c_in": c1, "c_out": c2, "hw": [h, wd], "mac": mac, "bound": bound,
                   "ratio": mac / bound})
    bad = [r for r in g1 if r["ratio"] > G1_WARN]
    if bad:
        worst = max(bad, key=lambda r: r["ratio"])
        warnings.append(f"G1: {len(bad)} of {len(g1)} 1x1 convs access >{G1_WARN:.1f}x the minimum memory for their "
                        f"FLOPs (unequal channels; worst {worst['layer']} {worst['c_in']}->{worst['c_out']}, "
                        f"{worst['ratio']:.2f}x)")

    # G2
    g2 = []
    for layer in profile.layers_unfused:
        n = nodes[layer.nodes[0]]
        g = n.attrs.get("groups", 1)
        if n.kind != "conv" or g == 1 or n.attrs.get("transposed"):
            continue
        x, wt, y = n.inputs[0].shape, n.inputs[1].shape, n.outputs[0].shape
        k = 1
        for d in wt[2:]:
            k *= d
        c_in, c_out = x[1], y[1]
        out_sp = layer.cost.macs // max(c_out * wt[1] * k, 1)  # output positions (batch included)
        in_el, out_el = _numel(x), _numel(y)
        grouped = (in_el + out_el + c_out * wt[1] * k) / (2 * layer.cost.macs)
        dense_macs = out_sp * c_out * c_in * k
        dense = (in_el + out_el + c_out * c_in * k) / (2 * dense_macs)
        g2.append({"layer": layer.name, "groups": g, "depthwise": g == c_in == c_out,
                   "bytes_per_flop": grouped, "dense_bytes_per_flop": dense, "ratio": grouped / dense,
                   "bound": layer.bound or None})
    if g2:
        mem = [r for r in g2 if r["bound"] == "memory"] if timed else g2
        if mem:
            warnings.append(f"G2: {len(mem)} grouped/depthwise convs move {_median([r['ratio'] for r in mem]):.0f}x "
                            f"(median) the bytes per FLOP of a dense conv" +
                            (" and are memory-bound on this chip" if timed else ""))

    # G3
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
    g3 = {"ops": len(real), "depth": depth, "width": width,
          "serial_fraction": depth / len(real) if real else 0.0,
          "parallel_levels": sum(1 for v in per_level.values() if v > 1),
          "small_op_chains": len(chains), "longest_small_chain": max((c["length"] for c in chains), default=0),
          "ops_in_small_chains": sum(c["length"] for c in chains), "chains": chains[:20]}
    if chains:
        warnings.append(f"G3: {len(chains)} serial chains of >= {G3_CHAIN} MAC-free ops "
                        f"({g3['ops_in_small_chains']} ops, longest {g3['longest_small_chain']}); "
                        f"graph depth {depth} of {len(real)} ops, at most {width} in parallel")

    # G4
    def share(layers) -> float:
        key = (lambda c: c.latency_s) if timed else (lambda c: c.bytes)
        tot = sum(key(layer.cost) for layer in layers)
        elt = sum(key(layer.cost) for layer in layers if layer.op_type in ("eltwise", "act"))
        return elt / tot if tot else 0.0

    g4 = {"measure": "estimated time" if timed else "bytes moved (no chip given)",
          "eltwise_share_unfused": share(profile.layers_unfused),
          "eltwise_share_fused": share(profile.layers_fused)}
    if g4["eltwise_share_unfused"] > G4_WARN:
        warnings.append(f"G4: element-wise ops take {g4['eltwise_share_unfused']:.0%} of the {g4['measure']} "
                        f"unfused, {g4['eltwise_share_fused']:.0%} after fusion")
    return {"G1": {"convs": g1, "flagged": len(bad)}, "G2": {"convs": g2}, "G3": g3, "G4": g4, "warnings": warnings}


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if s else 0.0
