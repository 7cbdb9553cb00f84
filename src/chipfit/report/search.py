"""Plots of a search (``pareto.json``): per target, every candidate's estimated accuracy against its latency, the
feasible front as a line, the budget as a vertical line, and the zoo's hand-designed networks on the same axes
(at their trained accuracy where it is known, else as marks on the latency axis)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chipfit.report.plots import _plt, save


def front_plots(report: Mapping[str, Any], out: str | Path,
                zoo_accuracy: Mapping[str, float] | None = None) -> list[Path]:
    """One PNG per target in ``out`` (``front_<target>.png``); returns the paths.

    Args:
        report: the search's ``pareto.json`` content.
        out: the folder.
        zoo_accuracy: trained test accuracy of zoo networks by name (their dots sit at it); others are marked on
            the latency axis only.
    """
    plt = _plt()
    out = Path(out)
    zoo_accuracy = zoo_accuracy or {}
    cands = report["candidates"]
    paths = []
    for t in report["targets"]:
        label = t["label"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        infeas = [c for c in cands if not c["feasible"]]
        feas = [c for c in cands if c["feasible"] and not c["pareto"]]
        front = sorted((c for c in cands if c["pareto"]), key=lambda c: c["latency_s"][label])
        for group, style in ((infeas, {"color": "#bbbbbb", "marker": "x", "label": "infeasible"}),
                             (feas, {"color": "#1f77b4", "marker": "o", "alpha": 0.5, "label": "feasible"})):
            if group:
                ax.scatter([c["latency_s"][label] * 1e3 for c in group], [c["accuracy_estimate"] for c in group],
                           s=14, **style)
        if front:
            ax.plot([c["latency_s"][label] * 1e3 for c in front], [c["accuracy_estimate"] for c in front], "-o",
                    color="#d62728", ms=5, label="front (supernet estimate)")
            for c in front:
                r = c.get("retrained")
                if r:
                    ax.scatter([c["latency_s"][label] * 1e3], [r["test_accuracy"]], marker="*", s=120,
                               color="#d62728", edgecolor="k", zorder=5)
        if any(c.get("retrained") for c in front):
            ax.scatter([], [], marker="*", s=120, color="#d62728", edgecolor="k", label="front, retrained (test)")
        budget = t.get("latency_budget_s")
        if budget:
            ax.axvline(budget * 1e3, color="k", ls="--", lw=1, label=f"budget {budget * 1e3:.3g} ms")
        for z in report.get("zoo", []):
            x = z["latency_s"][label] * 1e3
            acc = zoo_accuracy.get(z["name"])
            if acc is not None:
                ax.scatter([x], [acc], marker="s", s=40, color="#2ca02c", edgecolor="k", zorder=4)
                ax.annotate(z["name"], (x, acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
            else:
                ax.axvline(x, color="#2ca02c", ls=":", lw=1)
                ax.annotate(z["name"], (x, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                            va="top", ha="right")
        if zoo_accuracy and any(z["name"] in zoo_accuracy for z in report.get("zoo", [])):
            ax.scatter([], [], marker="s", color="#2ca02c", edgecolor="k", label="zoo (trained, test)")
        ax.set_xscale("log")
        ax.set_xlabel(f"latency on {label} (ms, log)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{report['space']['name']} on {report['data']}: {label}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
        safe = label.replace("/", "_").replace(" ", "_")
        paths.append(save(fig, out / f"front_{safe}.png"))
    return paths


def codesign_plots(report: Mapping[str, Any], out: str | Path) -> list[Path]:
    """A joint search's candidates: estimated accuracy against latency and against energy, coloured by accelerator
    area, the front ringed in red (``codesign_latency.png``, ``codesign_energy.png``)."""
    plt = _plt()
    out = Path(out)
    cands = [c for c in report["candidates"] if c["latency_s"] is not None]
    paths = []
    for key, unit, scale, name in (("latency_s", "ms", 1e3, "latency"), ("energy_j", "uJ", 1e6, "energy")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if cands:
            sc = ax.scatter([c[key] * scale for c in cands], [c["accuracy_estimate"] for c in cands],
                            c=[c["area_mm2"] for c in cands], cmap="viridis", s=14,
                            norm=_lognorm([c["area_mm2"] for c in cands]))
            fig.colorbar(sc, ax=ax, label="accelerator area (mm2)")
            front = [c for c in cands if c["pareto"]]
            ax.scatter([c[key] * scale for c in front], [c["accuracy_estimate"] for c in front], s=40,
                       facecolors="none", edgecolors="#d62728", label=f"front ({len(front)})")
        ax.set_xscale("log")
        ax.set_xlabel(f"{name} per inference ({unit}, log)")
        ax.set_ylabel("accuracy (supernet estimate)")
        sp = report["space"]
        ax.set_title(f"{sp['net']['name']} x {sp['hw']['name']} on {report.get('data', '')}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
        paths.append(save(fig, out / f"codesign_{name}.png"))
    return paths


def _lognorm(values: list[float]) -> Any:
    from matplotlib.colors import LogNorm

    lo, hi = min(values), max(values)
    return LogNorm(vmin=lo, vmax=hi if hi > lo else lo * 1.01)


__all__ = ["codesign_plots", "front_plots"]
