"""`chipfit hw ...` subcommands: list, show, calibrate.

A user's mistake ends with one ``error: ...`` line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

hw_app = typer.Typer(no_args_is_help=True, add_completion=False)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _console() -> Console:
    from rich.console import Console

    # Piped output gets wide tables instead of rich's 80-column fallback (as in chipfit.cli).
    return Console(highlight=False) if sys.stdout.isatty() else Console(width=160, highlight=False)


def _ops(value: float, dtype: str) -> str:
    unit = "TFLOPS" if dtype.startswith(("fp", "bf")) else "TOPS"
    return f"{dtype} {value / 1e12:.4g} {unit}"


def _number(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "none"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@hw_app.command("list")
def list_cmd() -> None:
    """The chip profiles: peak by dtype, DRAM bandwidth, on-chip memory, ridge point, the array to simulate."""
    from rich.markup import escape
    from rich.table import Table

    from chipfit.hw.chip import chip_files, load_chip, user_chip_dir

    udir = user_chip_dir()
    broken: list[str] = []
    t = Table(title="chip profiles (chipfit hw show NAME: every number with its source)")
    for col, right in (("name", False), ("kind", False), ("peak", False), ("DRAM GB/s", True), ("on-chip MiB", True),
                       ("ridge ops/B", True), ("power W", True), ("simulate", False), ("from", False)):
        t.add_column(col, justify="right" if right else "left")
    for name, path in sorted(chip_files().items()):
        origin = "user" if path.parent == udir else "built-in"
        try:
            c = load_chip(name)
        except ValueError as e:
            t.add_row(escape(name), "[red]invalid[/]", "(the error is printed below)", "", "", "", "", "", origin)
            broken.append(str(e))
            continue
        best = c.best_dtype()
        ridge = c.ridge(best)
        a = c.array
        t.add_row(
            escape(c.name), c.kind, ", ".join(_ops(v, d) for d, v in c.peak_ops_per_s.items()),
            "none" if c.dram_bandwidth_bytes_per_s is None else f"{c.dram_bandwidth_bytes_per_s / 1e9:.4g}",
            f"{c.onchip_bytes / 2**20:.4g}", "-" if ridge is None else f"{ridge:,.0f} ({best})",
            "-" if c.power_w is None else f"{c.power_w:.3g}",
            "-" if a is None else f"{a.rows}x{a.cols} {a.dataflow}", origin,
        )
    out = _console()
    out.print(t)
    out.print("ridge: ops per DRAM byte where peak x efficiency meets DRAM bandwidth, at the best dtype. "
              "simulate: the systolic array chipfit simulate runs (rows x cols, dataflow), - where none is modelled. "
              f"User profiles: {escape(str(udir))}")
    for message in broken:
        typer.echo(f"warning: {message}", err=True)


@hw_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="chip name (chipfit hw list), YAML file or SCALE-Sim .cfg")],
    json_out: Annotated[bool, typer.Option("--json", help="print the profile as JSON instead of a table")] = False,
) -> None:
    """Every field of a chip profile, each number with its source, the simulator's array section included."""
    from rich.markup import escape
    from rich.table import Table

    from chipfit.hw import load_chip

    try:
        c = load_chip(name)
    except ValueError as e:
        _fail(str(e))
    d = c.to_dict()
    if json_out:
        typer.echo(json.dumps(d, indent=2))
        return
    t = Table(title=escape(f"{c.name}: {c.description}"))
    t.add_column("field")
    t.add_column("value", justify="right")
    t.add_column("source")

    def rows(prefix: str, node: Any) -> None:
        if node is None:
            t.add_row(prefix, "none", "")
        elif isinstance(node, dict) and set(node) == {"value", "source"}:
            t.add_row(prefix, _number(node["value"]), escape(node["source"]))
        elif isinstance(node, dict):
            for k, v in node.items():
                rows(f"{prefix}.{k}" if prefix else k, v)
        else:
            t.add_row(prefix, escape(str(node)), "")

    rows("", {k: v for k, v in d.items() if k not in ("name", "description", "path")})
    out = _console()
    out.print(t)
    if c.array is None:
        out.print("array: none, so chipfit simulate cannot run this chip (chipfit hw list: the ones it can)")
    else:
        out.print("array: what chipfit simulate runs, at the chip's clock_hz, dram_bandwidth_bytes_per_s and energy "
                  "except where array.* overrides them")
    out.print(escape(f"file: {c.path}"))


@hw_app.command("calibrate")
def calibrate_cmd(
    out: Annotated[Path | None, typer.Option(help="destination YAML (default: host.yaml in the user profile folder)")]
    = None,
    quick: Annotated[bool, typer.Option("--quick", help="small sizes: seconds, rough figures")] = False,
) -> None:
    """Measure this machine (fp32 matmul ops/s, memory bandwidth, per-op overhead) into a `host` profile."""
    from chipfit.hw.calibrate import calibrate

    try:
        chip = calibrate(out, quick=quick)
    except OSError as e:
        _fail(f"cannot write the profile: {e}")
    except ValueError as e:
        _fail(str(e))
    assert chip.dram_bandwidth_bytes_per_s is not None
    typer.echo(f"host: {chip.peak('fp32') / 1e9:.1f} GFLOP/s fp32 matmul, "
               f"{chip.dram_bandwidth_bytes_per_s / 1e9:.1f} GB/s copy, {chip.op_overhead_s * 1e6:.2f} us per op; "
               f"wrote {chip.path}")
