"""Plots (PNG): the roofline and per-layer latency of a profile on a chip, the simulator's cycles per layer, and a
trained classifier's confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chipfit.cost.profile import Profile
from chipfit.hw.sim.simulate import SimResult

_COLORS = {
    "conv": "#1f77b4", "linear": "#ff7f0e", "matmul": "#2ca02c", "attention": "#d62728", "norm": "#9467bd",
    "act": "#8c564b", "eltwise": "#e377c2", "pool": "#7f7f7f", "softmax": "#bcbd22", "reduce": "#17becf",
    "copy": "#aec7e8", "interp": "#ffbb78", "unsupported": "#000000",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _roofline_estimate(profile: Profile) -> Any:
    est = profile.estimate
    if est is None or est.source != "roofline" or "chip" not in est.extra:
        raise ValueError("a roofline needs a chip: profile with hw=... (chipfit profile --hw NAME)")
    return est


def roofline_plot(profile: Profile, path: str | Path) -> Path:
    """The chip's roof and each layer at (FLOPs per DRAM byte, attainable FLOP/s), coloured by op type."""
    est = _roofline_estimate(profile)
    plt = _plt()
    hw = est.extra["chip"]
    dtype = profile.precision.compute
    peak = _value(hw["peak_ops_per_s"][dtype]) * _value(hw["efficiency"])
    bw = _value(hw.get("dram_bandwidth_bytes_per_s"))
    layers = [(lay, x) for lay, x in zip(profile.layers, est.layers, strict=True) if lay.cost.flops > 0]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    xs = [lay.cost.flops / x.dram_bytes for lay, x in layers if x.dram_bytes > 0]
    on_chip = [lay for lay, x in layers if x.dram_bytes == 0]
    xmax = max([*xs, (peak / bw) * 10 if bw else 1e4]) * 2
    xmin = min([*xs, (peak / bw) / 10 if bw else 1e-1]) / 2
    import numpy as np

    grid = np.logspace(np.log10(xmin), np.log10(xmax), 200)
    roof = np.minimum(peak, grid * bw) if bw else np.full_like(grid, peak)
    ax.plot(grid, roof, "k-", lw=2, label=f"roof: {peak / 1e12:.2g} T{dtype} ops/s x eff"
            + (f", {bw / 1e9:.3g} GB/s" if bw else ""))
    if bw:
        ax.axvline(peak / bw, color="k", ls=":", lw=1)
        ax.text(peak / bw, peak * 1.15, f" ridge {peak / bw:.0f} FLOP/B", fontsize=8)
    for op_type in sorted({lay.op_type for lay, _ in layers}):
        sel = [(lay, e) for lay, e in layers if lay.op_type == op_type]
        x = [lay.cost.flops / e.dram_bytes if e.dram_bytes else xmax for lay, e in sel]
        y = [lay.cost.flops / e.latency_s for lay, e in sel]
        ax.scatter(x, y, s=18, alpha=0.75, color=_COLORS.get(op_type, "#333333"), label=op_type)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xmin, xmax * 1.5)
    ax.set_xlabel("arithmetic intensity (FLOPs per DRAM byte)")
    ax.set_ylabel("attainable performance (FLOP/s)")
    mode = "fused" if profile.fused else "unfused"
    ax.set_title(f"{profile.model_name} on {hw['name']} ({profile.precision.name}, {mode})"
                 + (f"\n{len(on_chip)} layers with no DRAM traffic drawn at the right edge" if on_chip else ""),
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    return save(fig, path)


def latency_bars(profile: Profile, path: str | Path, top: int | None = None) -> Path:
    """Per-layer latency in execution order (or the ``top`` slowest), coloured by op type, memory-bound hatched."""
    est = profile.estimate
    if est is None:
        raise ValueError("latency bars need a chip: profile with hw=...")
    plt = _plt()
    pairs = list(zip(profile.layers, est.layers, strict=True))
    if top:
        pairs = sorted(pairs, key=lambda p: -p[1].latency_s)[:top]
    layers = [lay for lay, _ in pairs]
    fig, ax = plt.subplots(figsize=(max(8, min(24, len(layers) * 0.12)), 4.5), dpi=120)
    xs = range(len(layers))
    ys = [x.latency_s * 1e3 for _, x in pairs]
    colors = [_COLORS.get(lay.op_type, "#333333") for lay in layers]
    bars = ax.bar(xs, ys, color=colors, width=0.85)
    for bar, (_, x) in zip(bars, pairs, strict=True):
        if x.bound == "memory":
            bar.set_hatch("///")
            bar.set_edgecolor("white")
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("layer (execution order)" if not top else f"the {top} slowest layers")
    ax.set_title(f"{profile.model_name} on {est.target}: {est.latency_s * 1e3:.3g} ms in all "
                 f"({est.source}; hatched: memory-bound)", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=_COLORS.get(t, "#333333")) for t in sorted({lay.op_type
                                                                                          for lay in layers})]
    ax.legend(handles, sorted({lay.op_type for lay in layers}), fontsize=7, ncol=4)
    if len(layers) <= 40:
        ax.set_xticks(list(xs))
        ax.set_xticklabels([lay.module or lay.name for lay in layers], rotation=90, fontsize=6)
    return save(fig, path)


def cycle_bars(result: SimResult, path: str | Path, top: int | None = 60) -> Path:
    """Stacked compute (array or vector unit) and stall cycles per layer, in network order.

    Args:
        result: a simulation.
        path: the PNG to write (its folder is created).
        top: keep only the ``top`` layers with the most cycles (network order kept); ``None`` keeps all.
    """
    plt = _plt()
    layers = list(enumerate(result.layers))
    if top is not None and len(layers) > top:
        keep = {i for i, _ in sorted(layers, key=lambda x: -x[1].total_cycles)[:top]}
        layers = [x for x in layers if x[0] in keep]
    names = [x.name for _, x in layers]
    array = [x.compute_cycles if x.macs else 0 for _, x in layers]
    vector = [0 if x.macs else x.compute_cycles for _, x in layers]
    stall = [x.stall_cycles for _, x in layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(names) + 2), 4.5), dpi=120)
    pos = range(len(names))
    ax.bar(pos, array, color="#1f77b4", label="compute (array)")
    ax.bar(pos, vector, bottom=array, color="#2ca02c", label="compute (vector unit)")
    ax.bar(pos, stall, bottom=[a + v for a, v in zip(array, vector, strict=True)], color="#d62728",
           label="stall (DRAM)")
    tot = result.total
    shown = "" if len(layers) == len(result.layers) else f", {len(layers)} of {len(result.layers)} layers shown"
    ax.set_title(f"{result.model} on {result.arch.name} ({result.dataflow}, {result.precision.name}, "
                 f"batch {result.batch}): {tot['cycles']:,} cycles, {tot['stall_cycles']:,} stalled{shown}", fontsize=9)
    ax.set_ylabel("cycles")
    ax.set_xticks(list(pos))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.legend(fontsize=8)
    return save(fig, path)

def confusion_png(conf: list[list[int]], classes: list[str], path: str | Path, title: str) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), row-normalised colours, counts in the cells."""
    import numpy as np

    plt = _plt()
    c = np.asarray(conf, dtype=float)
    norm = c / np.maximum(c.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    return save(fig, path)


def save(fig, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _plt().close(fig)
    return path


def _value(v):
    return v["value"] if isinstance(v, dict) else v
