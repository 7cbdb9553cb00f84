"""Rich tables and CSV of a profile, with its hardware estimate when a chip was given."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chipfit.cost.profile import Profile, module_key


def si(x: float, unit: str = "") -> str:
    """Engineering notation: 4.13 G, 22.1 M, 512 k."""
    if x is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


def joules(j: float | None) -> str:
    """Energy with the unit that keeps three significant digits readable: 1.2 mJ, 569 uJ, 3.4 nJ."""
    if j is None:
        return "-"
    for factor, unit in ((1, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if j >= factor:
            return f"{j / factor:.3g} {unit}"
    return f"{j / 1e-12:.3g} pJ"


def print_profile(profile: Profile, console: Console, by: str = "layer", top: int = 15) -> None:
    """Heaviest layers (or a breakdown by module / op type), totals, fusion, guidelines and unsupported ops."""
    est = profile.estimate
    timed = est is not None
    mode = "fused" if profile.fused else "unfused"
    if by == "layer":
        pairs = list(zip(profile.layers, est.layers if timed else [None] * len(profile.layers), strict=True))
        key = (lambda p: p[1].latency_s) if timed else (lambda p: p[0].cost.flops)
        rows = sorted(pairs, key=key, reverse=True)[:top]
        t = Table(title=f"{profile.model_name}: the {len(rows)} heaviest of {len(profile.layers)} layers ({mode})")
        for col in ("layer", "type", "output", "MACs", "FLOPs", "bytes", "FLOP/B"):
            t.add_column(col, justify="left" if col in ("layer", "type", "output") else "right")
        if timed:
            for col in ("DRAM", "latency", "bound"):
                t.add_column(col, justify="right")
        for lay, x in rows:
            c = lay.cost
            cells = [lay.name, lay.op_type, "x".join(map(str, lay.output_shape)), si(c.macs), si(c.flops),
                     si(c.bytes, "B"), f"{c.intensity:.1f}" if c.bytes else "-"]
            if timed:
                cells += [si(x.dram_bytes, "B"), seconds(x.latency_s), x.bound or "-"]
            t.add_row(*cells)
    else:
        def key(lay) -> str:
            return lay.op_type if by == "op" else module_key(lay, 2)

        groups = profile.by_module(depth=2) if by == "module" else profile.by_op_type()
        latency: dict[str, float] = {}
        if timed:
            for lay, x in zip(profile.layers, est.layers, strict=True):
                latency[key(lay)] = latency.get(key(lay), 0.0) + x.latency_s
        t = Table(title=f"{profile.model_name}: cost by {'module' if by == 'module' else 'op type'} ({mode})")
        for col in (by, "ops", "params", "MACs", "FLOPs", "bytes"):
            t.add_column(col, justify="left" if col == by else "right")
        if timed:
            t.add_column("latency", justify="right")
            t.add_column("share", justify="right")
        total_lat = sum(latency.values()) or 1.0
        for k, c in list(groups.items())[: max(top, 25)]:
            cells = [k, str(c.ops), si(c.params), si(c.macs), si(c.flops), si(c.bytes, "B")]
            if timed:
                cells += [seconds(latency.get(k, 0.0)), f"{latency.get(k, 0.0) / total_lat:.1%}"]
            t.add_row(*cells)
    console.print(t)
    print_totals(profile, console)


def print_totals(profile: Profile, console: Console) -> None:
    u, f = profile.total_for(False), profile.total_for(True)
    s = profile.structure()
    mem = profile.memory
    t = Table(title="totals", show_header=True)
    t.add_column("")
    t.add_column("unfused", justify="right")
    t.add_column("fused" + (" (reported)" if profile.fused else ""), justify="right")
    t.add_row("params", si(u.params), si(f.params))
    t.add_row("MACs", si(u.macs), si(f.macs))
    t.add_row("FLOPs", si(u.flops), si(f.flops))
    t.add_row("bytes read", si(u.bytes_read, "B"), si(f.bytes_read, "B"))
    t.add_row("bytes written", si(u.bytes_written, "B"), si(f.bytes_written, "B"))
    t.add_row("peak activations", si(mem["peak_activation_bytes_unfused"], "B"),
              si(mem["peak_activation_bytes_fused"], "B"))
    t.add_row("ops / kernels", str(s["op_count"]), str(s["fused_units"]))
    eu, ef = profile.estimates.get("unfused"), profile.estimates.get("fused")
    if eu is not None and ef is not None:
        t.add_row("DRAM bytes", si(eu.dram_bytes, "B"), si(ef.dram_bytes, "B"))
        t.add_row("latency", seconds(eu.latency_s), seconds(ef.latency_s))
        t.add_row("inferences/s", f"{1 / eu.latency_s:.4g}", f"{1 / ef.latency_s:.4g}")
        t.add_row("energy", si(eu.energy_j, "J"), si(ef.energy_j, "J"))
        t.add_row("inferences/J", f"{1 / eu.energy_j:.4g}", f"{1 / ef.energy_j:.4g}")
    console.print(t)
    est = profile.estimate
    console.print(f"graph depth {s['depth']} ops, width {s['width']} (ops that can run in parallel); "
                  f"precision {profile.precision.name}; capture: {profile.graph.capture}"
                  + (f"; chip: {est.target} ({est.source})" if est is not None else ""), highlight=False)
    fu = profile.fusion()
    if fu["groups"]:
        chains = ", ".join(f"{k} x{v}" for k, v in list(fu["chains"].items())[:4])
        saved = f"saves {si(fu['bytes_saved'], 'B')}"
        if fu["latency_saved_s"] is not None:
            saved += f" and {seconds(fu['latency_saved_s'])}"
        console.print(f"fusion: {fu['groups']} chains ({chains}) {saved}", highlight=False)
    for w in profile.guidelines.get("warnings", []):
        console.print(f"[yellow]guideline[/] {escape(w)}", highlight=False)
    for n in [*profile.notes, *(est.notes if est is not None else ())]:
        console.print(f"[yellow]note[/] {escape(n)}", highlight=False)
    if profile.unsupported:
        ops = ", ".join(f"{k} x{v}" for k, v in profile.unsupported.items())
        console.print(f"[bold red]unsupported[/] (not costed, not counted as zero): {ops}", highlight=False)


def write_csv(profile: Profile, path: str | Path) -> Path:
    """One row per layer of the profile's mode, with its estimated time when a chip was given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = profile.layer_rows()
    cols = ["name", "module", "module_type", "op_type", "kinds", "output_shape", "params", "macs", "flops",
            "bytes_read", "bytes_written", "weight_bytes", "dram_bytes", "intensity", "compute_s", "memory_s",
            "latency_s", "energy_j", "bound"]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            r["kinds"] = "+".join(r["kinds"])
            r["output_shape"] = "x".join(map(str, r["output_shape"]))
            w.writerow(r)
    return path
