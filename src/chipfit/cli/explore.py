"""`chipfit hw explore`: the accelerator front (latency, energy, area) of a fixed network over an accelerator space,
with the built-in chips placed on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from chipfit.cli._common import MODEL_HELP, console, fail, user_errors


def explore(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    hw_space: Annotated[str, typer.Option("--hw-space", help="accelerator space: npu (built-in, 8x8 to 256x256), "
                                                             "edge, chip:NAME or a .json/.yaml file")] = "npu",
    trials: Annotated[int, typer.Option(min=1, help="designs to score in all (a resumed run continues to it)")]
    = 2000,
    strategy: Annotated[str, typer.Option(help="auto, grid, random or refine (random, then the front's "
                                               "neighbours)")] = "auto",
    area: Annotated[str | None, typer.Option("--area", help="area budget, e.g. 10mm2")] = None,
    power: Annotated[str | None, typer.Option("--power", help="peak-power budget, e.g. 2W")] = None,
    latency: Annotated[str | None, typer.Option("--latency", help="latency budget, e.g. 0.4ms")] = None,
    energy_budget: Annotated[str | None, typer.Option("--energy-budget", help="energy budget, e.g. 50uJ")] = None,
    objectives: Annotated[str, typer.Option(help="comma-separated: latency_s, energy_j, area_mm2, period_s, "
                                                 "peak_w")] = "latency_s,energy_j,area_mm2",
    precision: Annotated[str, typer.Option(help="int8, int16, fp16, w4a8, ...")] = "int8",
    batch: Annotated[int, typer.Option(min=1)] = 1,
    sparsity: Annotated[str | None, typer.Option(help="N:M weight sparsity (2:4) where a design supports it")]
    = None,
    place: Annotated[str, typer.Option(help="chips to place on the front (comma-separated, '' for none)")]
    = "edge-npu,eyeriss-v1,tpu-v1",
    input: Annotated[str | None, typer.Option("--input", help="input shape, e.g. 1x3x224x224")] = None,
    out: Annotated[Path, typer.Option(help="folder: designs.jsonl (resumable), explore.json, plots")]
    = Path("explore"),
    seed: int = 0,
) -> None:
    """Simulate many accelerators running one network and keep the front over latency, energy and area; no
    training needed. Ctrl-C keeps every design scored: the same command continues."""
    with user_errors():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from chipfit.api import explore as run
        from chipfit.hw.explore import Budgets, parse_area, parse_power
        from chipfit.nas.latency import parse_energy, parse_latency

        budgets = Budgets(area_mm2=parse_area(area) if area else None, power_w=parse_power(power) if power else None,
                          latency_s=parse_latency(latency) if latency else None,
                          energy_j=parse_energy(energy_budget) if energy_budget else None)
        objs = tuple(o.strip() for o in objectives.split(",") if o.strip())
        chips = tuple(c.strip() for c in place.split(",") if c.strip())
        with Progress(TextColumn("designs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.description}"), console=console, transient=True) as bar:
            task = bar.add_task("", total=trials)

            def step(d, n: int) -> None:
                bar.update(task, completed=n)

            try:
                rep = run(model, hw_space, input_shape=input, out=out, place=chips, on_design=step, trials=trials,
                          strategy=strategy, seed=seed, budgets=budgets, objectives=objs, precision=precision,
                          batch=batch, sparsity=sparsity)
            except KeyboardInterrupt:
                console.print(f"interrupted; every design scored is in {escape(str(out))}/designs.jsonl: run the "
                              "same command to continue", highlight=False)
                raise typer.Exit(130) from None
        _summary(rep, out)
        if not rep["front"]:
            fail(f"no design meets the budgets among {len(rep['designs'])} scored ({escape(str(out))}/explore.json "
                 "lists what each breaks)")


def _summary(rep: dict, out: Path) -> None:
    from rich.table import Table

    front = sorted((d for d in rep["designs"] if d["pareto"]), key=lambda d: d["area_mm2"])
    t = Table(title=f"{rep['model']}: accelerator front of space {rep['space']['name']} ({len(front)} of "
                    f"{len(rep['designs'])} designs scored, {rep['space_size']:,} in the space)")
    for col in ("design", "area mm2", "latency ms", "energy uJ", "peak W"):
        t.add_column(col, justify="left" if col == "design" else "right")
    show = front if len(front) <= 20 else front[:: max(1, len(front) // 20)]
    for d in show:
        t.add_row(escape(d["key"]), f"{d['area_mm2']:.3g}", f"{d['latency_s'] * 1e3:.4g}",
                  f"{d['energy_j'] * 1e6:.4g}", f"{d['peak_w']:.3g}")
    console.print(t)
    for p in rep["placed"]:
        d, pl = p["design"], p["placement"]
        if pl.get("epsilon") is None:
            console.print(f"{p['chip']}: {pl.get('note')}", highlight=False, markup=False)
            continue
        where = (f"inside the front: a design is {1 / pl['epsilon']:.2f}x better in every objective"
                 if pl["inside_front"] else f"outside what was explored by {pl['epsilon']:.2f}x")
        console.print(f"{p['chip']}: {d['area_mm2']:.3g} mm2, {d['latency_s'] * 1e3:.4g} ms, "
                      f"{d['energy_j'] * 1e6:.4g} uJ; {where}", highlight=False, markup=False)
    st = rep["stats"]
    rate = f", {st['designs_per_s']:.0f} designs/s" if st.get("designs_per_s") else ""
    console.print(f"{st['evaluated']} designs scored in {st['seconds']:.1f} s{rate}; wrote {escape(str(out))}/"
                  "explore.json and plots", highlight=False)
