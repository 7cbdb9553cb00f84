"""Roofline plot and per-layer latency bars of a profile on a chip (PNG)."""

from __future__ import annotations

from pathlib import Path

from chipfit.cost.profile import Profile

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


def roofline_plot(profile: Profile, path: str | Path) -> Path:
    """The chip's roof and each layer at (FLOPs per DRAM byte, attainable FLOP/s), coloured by op type."""
    if profile.hardware is None:
        raise ValueError("a roofline needs a chip: profile with hw=... (chipfit profile --hw NAME)")
    plt = _plt()
    hw = profile.hardware
    dtype = profile.precision.compute
    peak = _value(hw["peak_ops_per_s"][dtype]) * _value(hw["efficiency"])
    bw = _value(hw.get("dram_bandwidth_bytes_per_s"))
    layers = [lay for lay in profile.layers if lay.cost.flops > 0]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    xs = [lay.cost.flops / lay.cost.dram_bytes for lay in layers if lay.cost.dram_bytes > 0]
    on_chip = [lay for lay in layers if lay.cost.dram_bytes == 0]
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
    for op_type in sorted({lay.op_type for lay in layers}):
        sel = [lay for lay in layers if lay.op_type == op_type]
        x = [lay.cost.flops / lay.cost.dram_bytes if lay.cost.dram_bytes else xmax for lay in sel]
        y = [lay.cost.flops / lay.cost.latency_s for lay in sel]
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
    if profile.hardware is None:
        raise ValueError("latency bars need a chip: profile with hw=...")
    plt = _plt()
    layers = list(profile.layers)
    if top:
        layers = sorted(layers, key=lambda lay: -lay.cost.latency_s)[:top]
    fig, ax = plt.subplots(figsize=(max(8, min(24, len(layers) * 0.12)), 4.5), dpi=120)
    xs = range(len(layers))
    ys = [lay.cost.latency_s * 1e3 for lay in layers]
    colors = [_COLORS.get(lay.op_type, "#333333") for lay in layers]
    bars = ax.bar(xs, ys, color=colors, width=0.85)
    for bar, lay in zip(bars, layers, strict=True):
        if lay.bound == "memory":
            bar.set_hatch("///")
            bar.set_edgecolor("white")
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("layer (execution order)" if not top else f"the {top} slowest layers")
    total = profile.total.latency_s * 1e3
    ax.set_title(f"{profile.model_name} on {profile.hardware['name']}: {total:.3g} ms in all "
                 "(hatched: memory-bound)", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=_COLORS.get(t, "#333333")) for t in sorted({lay.op_type
                                                                                          for lay in layers})]
    ax.legend(handles, sorted({lay.op_type for lay in layers}), fontsize=7, ncol=4)
    if len(layers) <= 40:
        ax.set_xticks(list(xs))
        ax.set_xticklabels([lay.module or lay.name for lay in layers], rotation=90, fontsize=6)
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
