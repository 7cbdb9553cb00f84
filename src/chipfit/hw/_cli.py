"""`chipfit hw ...` subcommands: list, show, calibrate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

hw_app = typer.Typer(no_args_is_help=True, add_completion=False)
_out = Console()
_err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    _err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _si(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    for f, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= f:
            return f"{x / f:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


@hw_app.command("list")
def list_cmd() -> None:
    """The chip profiles: peaks by dtype, DRAM bandwidth, on-chip memory, ridge point."""
    from chipfit.hw import list_chips, load_chip

    t = Table(title="chip profiles (chipfit hw show NAME for sources)")
    for col in ("name", "kind", "peak ops/s", "DRAM", "on-chip", "ridge ops/B", "power"):
        t.add_column(col)
    for name in list_chips():
        try:
            c = load_chip(name)
        except ValueError as e:
            t.add_row(name, "[red]invalid[/]", str(e)[:60], "", "", "", "")
            continue
        best = max(c.peak_ops_per_s, key=c.peak_ops_per_s.get)
        ridge = c.ridge(best)
        t.add_row(name, c.kind, ", ".join(f"{d} {_si(v, '')}" for d, v in c.peak_ops_per_s.items()),
                  _si(c.dram_bandwidth_bytes_per_s, "B/s") if c.dram_bandwidth_bytes_per_s else "none",
                  _si(c.onchip_bytes, "B"), f"{ridge:.0f} ({best})" if ridge else "-", _si(c.power_w, "W"))
    _out.print(t)


@hw_app.command("show")
def show_cmd(name: Annotated[str, typer.Argument(help="chip name or YAML file")]) -> None:
    """Every number of a chip profile with its source."""
    from chipfit.hw import load_chip

    try:
        c = load_chip(name)
    except ValueError as e:
        _fail(str(e))
    t = Table(title=f"{c.name}: {c.description}", show_lines=False)
    t.add_column("field")
    t.add_column("value", justify="right")
    t.add_column("source")
    values = {f"peak_ops_per_s.{d}": v for d, v in c.peak_ops_per_s.items()}
    values.update({k: getattr(c, k) for k in ("dram_bandwidth_bytes_per_s", "onchip_bytes",
                                               "sram_bandwidth_bytes_per_s", "efficiency", "op_overhead_s",
                                               "clock_hz", "power_w")})
    values.update({f"energy.mac_pj.{d}": v for d, v in c.energy.mac_pj.items()})
    values.update({"energy.sram_pj_per_byte": c.energy.sram_pj_per_byte,
                   "energy.dram_pj_per_byte": c.energy.dram_pj_per_byte})
    for k, v in values.items():
        if v is None:
            t.add_row(k, "none", "")
        else:
            t.add_row(k, f"{v:.4g}", c.sources.get(k, ""))
    t.add_row("concurrent_ops", str(c.concurrent_ops), "")
    _out.print(t)
    _out.print(f"file: {c.path}", highlight=False)


@hw_app.command("calibrate")
def calibrate_cmd(
    out: Annotated[Path | None, typer.Option(help="destination YAML (default: the user profile folder)")] = None,
    quick: Annotated[bool, typer.Option(help="small sizes: seconds, rough figures")] = False,
) -> None:
    """Measure this machine (fp32 matmul ops/s, memory bandwidth) into a `host` profile."""
    from chipfit.hw.calibrate import calibrate

    try:
        chip = calibrate(out, quick=quick)
    except OSError as e:
        _fail(f"cannot write the profile: {e}")
    _out.print(f"host: {chip.peak('fp32') / 1e9:.1f} GFLOP/s fp32, "
               f"{chip.dram_bandwidth_bytes_per_s / 1e9:.1f} GB/s; wrote {chip.path}", highlight=False)
