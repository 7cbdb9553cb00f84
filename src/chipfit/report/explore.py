"""Plots of an accelerator exploration (``explore.json``): latency and energy per inference against area, every
explored design as a dot, the front's designs in red, and named designs (built-in chips) as labelled stars."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chipfit.report.plots import _plt, save


def explore_plots(report: Mapping[str, Any], out: str | Path) -> list[Path]:
    """``explore_latency.png`` and ``explore_energy.png`` in ``out`` (log-log); returns the paths."""
    plt = _plt()
    out = Path(out)
    designs = [d for d in report["designs"] if d.get("error") is None]
    placed = report.get("placed", [])
    paths = []
    for key, unit, scale, name in (("latency_s", "ms", 1e3, "latency"), ("energy_j", "uJ", 1e6, "energy")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        rest = [d for d in designs if not d.get("pareto")]
        front = sorted((d for d in designs if d.get("pareto")), key=lambda d: d["area_mm2"])
        if rest:
            ax.scatter([d["area_mm2"] for d in rest], [d[key] * scale for d in rest], s=8, color="#1f77b4",
                       alpha=0.35, label=f"explored ({len(designs)})")
        if front:
            ax.scatter([d["area_mm2"] for d in front], [d[key] * scale for d in front], s=16, color="#d62728",
                       label=f"front over latency, energy, area ({len(front)})")
        for p in placed:
            d = p["design"]
            if d.get("error") is not None:
                continue
            ax.scatter([d["area_mm2"]], [d[key] * scale], marker="*", s=160, color="#2ca02c", edgecolor="k",
                       zorder=5)
            eps = p["placement"].get("epsilon")
            ax.annotate(f"{d['name']} (eps {eps:.2f})" if eps is not None else d["name"],
                        (d["area_mm2"], d[key] * scale), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"area (mm2 at {report['space']['node_nm']:g} nm)")
        ax.set_ylabel(f"{name} per inference ({unit})")
        ax.set_title(f"{report.get('model', '')} on space {report['space']['name']}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(save(fig, out / f"explore_{name}.png"))
    return paths


__all__ = ["explore_plots"]
