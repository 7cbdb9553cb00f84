"""`chipfit design`: a chip and a budget in, a trained, int8, exported and measured network and its report out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from chipfit.cli._common import console, err, fail, user_errors


def design(
    hw: Annotated[str, typer.Option("--hw", help="the target chip (chipfit hw list) or a chip YAML file")]
    = "edge-npu",
    latency: Annotated[str | None, typer.Option(help="latency budget on the target, e.g. 0.3ms")] = None,
    energy: Annotated[str | None, typer.Option(help="energy budget on the target, e.g. 60uJ")] = None,
    params: Annotated[str | None, typer.Option(help="parameter budget, e.g. 300k")] = None,
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree")] = "fashion-mnist",
    minutes: Annotated[float, typer.Option(help="time box of the whole run on this machine")] = 8.0,
    out: Annotated[Path, typer.Option(help="design folder: state.json, stage folders, report.html")]
    = Path("design"),
    space: Annotated[str, typer.Option(help="search space: quadranet_s28, mbconv_s28 or a JSON/YAML file")]
    = "quadranet_s28",
    source: Annotated[str | None, typer.Option(help="latency on the target by roofline or simulator (default: the "
                                                    "simulator for a chip with an array)")] = None,
    precision: Annotated[str, typer.Option(help="the target's precision")] = "int8",
    runtime: Annotated[str, typer.Option(help="measure the exported network in ort or openvino")] = "ort",
    qat_threshold: Annotated[float, typer.Option(help="quantization-aware training when int8 PTQ loses more than "
                                                      "this fraction (0.01: one point)")] = 0.01,
    supernet_epochs: Annotated[int | None, typer.Option(min=1, help="fix the plan: supernet epochs")] = None,
    supernet_steps: Annotated[int | None, typer.Option(min=1, help="fix the plan: supernet steps per epoch")] = None,
    generations: Annotated[int | None, typer.Option(min=1, help="fix the plan: search generations")] = None,
    population: Annotated[int, typer.Option(min=2, help="candidates per generation")] = 12,
    epochs: Annotated[int | None, typer.Option(min=1, help="fix the plan: training epochs")] = None,
    steps_per_epoch: Annotated[int | None, typer.Option(min=1, help="fix the plan: steps per training epoch")]
    = None,
    inherit: Annotated[bool, typer.Option("--inherit/--from-scratch", help="start the chosen network from the "
                                                                      "supernet's weights")] = True,
    zoo_epochs: Annotated[int, typer.Option(min=0, help="also train the best zoo network within the budgets for "
                                                       "this many epochs (0: compare modelled cost only)")] = 0,
    no_measure: Annotated[bool, typer.Option("--no-measure", help="do not time the exported files")] = False,
    seed: int = 0,
    force: Annotated[bool, typer.Option("--force", help="start afresh in an --out that holds files")] = False,
) -> None:
    """Search, train, compress to int8, export and measure a network for a chip and a budget, in one time box, and
    write DIR/report.html. Ctrl-C stops at once; the same command continues where it stopped."""
    with user_errors():
        from chipfit.cli.search import parse_count
        from chipfit.design import STAGES, DesignConfig
        from chipfit.design import design as run_design
        from chipfit.nas.latency import parse_energy, parse_latency

        if latency is None and energy is None and params is None:
            fail("give a budget: --latency (e.g. 0.3ms), --energy (e.g. 60uJ) or --params (e.g. 300k)")
        cfg = DesignConfig(hw=hw, latency_budget_s=parse_latency(latency) if latency else None,
                           energy_budget_j=parse_energy(energy) if energy else None,
                           params_budget=parse_count(params, "--params") if params else None, data=data,
                           minutes=minutes, out=str(out), space=space, source=source, precision=precision,
                           runtime=runtime, qat_threshold=qat_threshold, supernet_epochs=supernet_epochs,
                           supernet_steps=supernet_steps, generations=generations, population=population,
                           epochs=epochs, steps_per_epoch=steps_per_epoch, inherit=inherit, zoo_epochs=zoo_epochs,
                           measure=not no_measure, seed=seed)
        started = time.perf_counter()

        def on_stage(stage: str, info: dict) -> None:
            left = info["left_s"]
            what = "done earlier, read back" if info["skipped"] else f"{max(left, 0) / 60:.1f} of {minutes:g} min left"
            err.print(f"[bold][{info['index'] + 1}/{len(STAGES)}] {stage}[/bold]: {what}", highlight=False)

        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the QDQ exporter's notes on static shapes
            state = run_design(cfg, force=force, on_stage=on_stage)
        done = state["done"]
        comp = done["compress"][done["compress"]["chosen"]]
        ch = done["search"]["chosen"]
        lat = next(iter(ch["latency_s"].values()))
        from chipfit.design.summary import arch_text

        console.print(f"designed {arch_text(ch['describe'])}: test accuracy {done['train']['test_accuracy']:.4f} "
                      "float, "
                      f"{comp['int8_accuracy']:.4f} int8; {lat * 1e3:.3g} ms on {hw} (modelled), "
                      f"{done['train']['params']:,} params; {(time.perf_counter() - started) / 60:.1f} min this run",
                      highlight=False, markup=False)
        console.print(f"report: {out / 'report.html'}", highlight=False, markup=False)
