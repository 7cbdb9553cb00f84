"""Per-layer cycle bars of a simulation (PNG): compute and stall cycles stacked, one bar per layer."""

from __future__ import annotations

from pathlib import Path

from chipfit.hw.sim.simulate import SimResult


def cycle_bars(result: SimResult, path: str | Path, top: int | None = 60) -> Path:
    """Stacked compute (array or vector unit) and stall cycles per layer, in network order.

    Args:
        result: a simulation.
        path: the PNG to write (its folder is created).
        top: keep only the ``top`` layers with the most cycles (network order kept); ``None`` keeps all.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(enumerate(result.layers))
    if top is not None and len(layers) > top:
        keep = {i for i, _ in sorted(layers, key=lambda x: -x[1].total_cycles)[:top]}
        layers = [x for x in layers if x[0] in keep]
    names = [x.name for _, x in layers]
    array = [x.compute_cycles if x.macs else 0 for _, x in layers]
    vector = [0 if x.macs else x.compute_cycles for _, x in layers]
    stall = [x.stall_cycles for _, x in layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * len(names) + 2), 4.5))
    pos = range(len(names))
    ax.bar(pos, array, color="#1f77b4", label="compute (array)")
    ax.bar(pos, vector, bottom=array, color="#2ca02c", label="compute (vector unit)")
    ax.bar(pos, stall, bottom=[a + v for a, v in zip(array, vector, strict=True)], color="#d62728",
           label="stall (DRAM)")
    tot = result.total
    shown = "" if len(layers) == len(result.layers) else f", {len(layers)} of {len(result.layers)} layers shown"
    ax.set_title(f"{result.model} on {result.arch.name} ({result.dataflow}, {result.bits}-bit, batch {result.batch}): "
                 f"{tot['cycles']:,} cycles, {tot['stall_cycles']:,} stalled{shown}", fontsize=9)
    ax.set_ylabel("cycles")
    ax.set_xticks(list(pos))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
