"""`chipfit profile`, `chipfit models`, `chipfit simulate`: what a network costs, on a roofline or a simulated chip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from chipfit.cli._common import (
    FUSED_HELP,
    HW_HELP,
    MODEL_HELP,
    PRECISION_HELP,
    console,
    deprecated_arch,
    err,
    fail,
    note,
    outputs_apart,
    user_errors,
    write_json,
)


def profile(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    hw: Annotated[str | None, typer.Option("--hw", help=HW_HELP)] = None,
    input: Annotated[str | None, typer.Option("--input", help="input shape, e.g. 1x3x224x224")] = None,
    precision: Annotated[str | None, typer.Option("--precision", "--dtype", help=PRECISION_HELP + "; default fp32, "
                                                  "or the chip's own on a chip without fp32")] = None,
    fused: Annotated[bool, typer.Option("--fused/--unfused", help=FUSED_HELP)] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the whole profile as JSON")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write one row per layer")] = None,
    plot: Annotated[Path | None, typer.Option(help="roofline PNG; latency bars go beside it (_layers.png)")] = None,
    by: Annotated[str, typer.Option(help="table rows: layer, module or op")] = "layer",
    top: Annotated[int, typer.Option(help="rows in the table")] = 15,
) -> None:
    """What a network costs: params, MACs, FLOPs, memory traffic, structure, guidelines; roofline on a chip."""
    with user_errors():
        from chipfit.api import profile as run_profile
        from chipfit.report.tables import print_profile, write_csv

        if by not in ("layer", "module", "op"):
            fail(f"--by must be layer, module or op, not {by!r}")
        if plot is not None and hw is None:
            fail("--plot needs a chip: add --hw NAME (chipfit hw list)")
        outputs_apart([model, hw], [json_out, csv_out, plot, plot and plot.with_name(plot.stem + "_layers.png")])
        prof = run_profile(model, input_shape=input, hw=deprecated_arch(hw, None), precision=precision,
                           fused=fused)
        print_profile(prof, console, by=by, top=top)
        if prof.unsupported:
            n = sum(prof.unsupported.values())
            note(f"warning: {n} op(s) of {len(prof.unsupported)} kind(s) have no cost handler and are listed under "
                 f"'unsupported': {', '.join(prof.unsupported)}")
        if json_out:
            write_json(json_out, prof.to_json())
        if csv_out:
            console.print(f"wrote {escape(str(write_csv(prof, csv_out)))}", highlight=False)
        if plot:
            from chipfit.report.plots import latency_bars, roofline_plot

            roof = roofline_plot(prof, plot)
            bars = latency_bars(prof, plot.with_name(plot.stem + "_layers.png"))
            console.print(f"wrote {escape(str(roof))} and {escape(str(bars))}", highlight=False)


def models(
    family: Annotated[str | None, typer.Option(help="only this family, e.g. quadranet")] = None,
    task: Annotated[str | None, typer.Option(help="classify, segment, detect or all (default: all)")] = None,
    counts: Annotated[bool, typer.Option(help="also count params and MACs at each model's input (profiles every "
                                              "network: seconds)")] = False,
) -> None:
    """List the built-in networks with their parameters and MACs."""
    with user_errors():
        from rich.progress import track
        from rich.table import Table

        from chipfit.api import profile as run_profile
        from chipfit.models import get_entry, list_models
        from chipfit.report.tables import si

        names = list_models(family, task=task or "all")
        if not names:
            fail(f"no models in family {family!r}" + (f" for task {task}" if task else ""))
        t = Table(title=f"{len(names)} built-in networks")
        for col in ("name", "task", "family", "input", "params", "MACs", "description"):
            t.add_column(col, justify="right" if col in ("params", "MACs") else "left")
        for name in track(names, description="counting", console=err, disable=not counts):
            e = get_entry(name)
            params = macs = "-"
            if counts:
                p = run_profile(name)
                params, macs = si(p.total.params), si(p.total.macs)
            t.add_row(name, e.task, e.family, "x".join(map(str, e.input_shape)), params, macs, escape(e.description))
        console.print(t)


def simulate(
    model: Annotated[str, typer.Argument(help=MODEL_HELP + ", or a SCALE-Sim topology .csv")],
    hw: Annotated[str | None, typer.Option("--hw", help=HW_HELP + " (one with an array: chipfit hw list), or an "
                                                  "in-memory / binary engine: isaac-like, prime-like, xnor")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help=PRECISION_HELP + "; default int8")] = None,
    fused: Annotated[bool, typer.Option("--fused/--unfused", help=FUSED_HELP)] = True,
    dataflow: Annotated[str | None, typer.Option(help="ws, os or is (default: the array's)")] = None,
    batch: Annotated[int, typer.Option(help="images per run")] = 1,
    chips: Annotated[int, typer.Option(help="split the network over K chips as a layer pipeline")] = 1,
    sparsity: Annotated[str | None, typer.Option(help="weight sparsity: N:M (2:4) or the zero fraction (0.5)")] = None,
    input: Annotated[str | None, typer.Option("--input", help="input shape, e.g. 1x3x224x224")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write per-layer records and totals as JSON")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write one row per layer")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG of compute and stall cycles per layer")] = None,
    top: Annotated[int, typer.Option(help="rows in the table (the layers with the most cycles)")] = 25,
    arch: Annotated[str | None, typer.Option("--arch", hidden=True, help="old name of --hw")] = None,
    bits: Annotated[int | None, typer.Option(hidden=True, help="old: activation bits (use --precision)")] = None,
    weight_bits: Annotated[int | None, typer.Option(hidden=True, help="old: weight bits (use --precision)")] = None,
    fuse: Annotated[bool, typer.Option("--fuse", hidden=True, help="old: fused is now the default")] = False,
) -> None:
    """Cycles, stalls, DRAM traffic and energy of a network on a systolic-array accelerator, layer by layer."""
    with user_errors():
        from rich.table import Table

        from chipfit.hw.sim.engines import is_engine
        from chipfit.report.tables import joules, seconds, si

        if str(model).lower().endswith(".csv") and not is_engine(hw):  # no loader, no torch: first output sooner
            from chipfit.hw.sim import simulate as run_simulate
        else:
            from chipfit.api import simulate as run_simulate
        if batch < 1 or chips < 1:
            fail("--batch and --chips must be at least 1")
        hw = deprecated_arch(hw, arch)
        if hw is None:
            fail("give the target: --hw NAME (a chip with an array, chipfit hw list), a YAML file or a SCALE-Sim .cfg")
        outputs_apart([model, hw], [json_out, csv_out, plot])
        if fuse:
            note("deprecated: --fuse is the default now (--fused); --unfused runs every op as its own layer")
        legacy = {}
        if bits is not None or weight_bits is not None:
            if precision is not None:
                fail("give --precision only (--bits and --weight-bits are its old spellings)")
            note("deprecated: --bits/--weight-bits are now --precision (int8, w4a8, ...)")
            legacy = {"bits": bits, "weight_bits": weight_bits}
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # said above, in the CLI's words
            res = run_simulate(model, hw, precision=precision if not legacy else None, fused=fused, dataflow=dataflow,
                               batch=batch, chips=chips, sparsity=sparsity, input_shape=input, **legacy)
        if not hasattr(res, "arch"):  # an in-memory or binary engine (chipfit.hw.sim.engines)
            console.print(escape(res.summary(top=min(top, 5))), highlight=False)
            if json_out is not None:
                import json as _json

                json_out.write_text(_json.dumps(res.to_dict(), indent=2))
            if csv_out is not None or plot is not None:
                note("--csv and --plot are for systolic arrays; --json writes the engine's layers")
            return
        a = res.arch
        rows = sorted(range(len(res.layers)), key=lambda i: -res.layers[i].total_cycles)[:top]
        shown = "" if len(rows) == len(res.layers) else f", the {len(rows)} with the most cycles"
        t = Table(title=escape(f"{res.model} on {a.name}: {a.rows}x{a.cols} {res.dataflow}, {res.precision.name}, "
                               f"batch {res.batch}{', ' + res.sparsity + ' sparsity' if res.sparsity else ''}, "
                               f"{'fused' if res.fused else 'unfused'} ({len(res.layers)} layers{shown})"))
        cols = ["layer", "kind"] + (["chip"] if chips > 1 else []) + ["cycles", "stall", "util", "MACs", "DRAM rd",
                                                                      "DRAM wr", "energy"]
        for col in cols:
            t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
        for i in sorted(rows):
            x = res.layers[i]
            cells = [escape(x.name), x.kind] + ([str(x.chip)] if chips > 1 else [])
            cells += [f"{x.total_cycles:,}", f"{x.stall_cycles:,}", f"{x.utilisation:.0%}" if x.macs else "-",
                      si(x.macs), si(x.dram_read_bytes, "B"), si(x.dram_write_bytes, "B"), joules(x.energy_j)]
            t.add_row(*cells)
        console.print(t)
        tot = res.total
        lines = [f"cycles {tot['cycles']:,} ({tot['stall_cycles']:,} stalled) at {si(a.clock_hz, 'Hz')}: "
                 f"{seconds(tot['time_s'])} per batch of {res.batch}" + (" (pipeline latency)" if chips > 1 else ""),
                 f"throughput {tot['inferences_per_s']:,.1f} inferences/s, energy {joules(tot['energy_j'])} per "
                 f"batch, {tot['inferences_per_j']:,.1f} inferences/J",
                 f"MACs {si(tot['macs'])}, DRAM {si(tot['dram_read_bytes'], 'B')} read + "
                 f"{si(tot['dram_write_bytes'], 'B')} written"]
        if res.pipeline is not None:
            p = res.pipeline
            lines.append(f"{len(p.stages)} chips, links {si(p.link_bytes_per_s, 'B/s')}: slowest stage chip "
                         f"{p.bottleneck} ({seconds(p.period_s)} per batch)")
        for line in lines + [f"note: {n}" for n in res.notes]:
            console.print(line, highlight=False, markup=False)
        if json_out:
            write_json(json_out, res.to_json())
        if csv_out:
            console.print(f"wrote {escape(str(res.to_csv(csv_out)))}", highlight=False)
        if plot:
            from chipfit.report.plots import cycle_bars

            console.print(f"wrote {escape(str(cycle_bars(res, plot)))}", highlight=False)


