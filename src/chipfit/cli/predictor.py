"""`chipfit predictor build|show`: a latency predictor trained on this machine, and what one holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from chipfit.cli._common import console, fail

predictor_app = typer.Typer(no_args_is_help=True, add_completion=False)


@predictor_app.command("build")
def build_cmd(
    out: Annotated[Path, typer.Option("--out", help="folder for the predictor (predictor.json, kernels/)")],
    runtime: Annotated[str, typer.Option(help="ort (ONNX Runtime CPU) or openvino (OpenVINO CPU)")] = "ort",
    minutes: Annotated[float, typer.Option(help="time budget; the build stops sampling when it is spent")] = 10.0,
    threads: Annotated[int, typer.Option(help="intra-op threads the predictor is valid for")] = 1,
    networks: Annotated[int, typer.Option(help="random training networks (kernel shapes and the correction)")] = 40,
    seed: Annotated[int, typer.Option(help="seed of the training networks and the sampling")] = 0,
    refit: Annotated[bool, typer.Option("--refit", help="measure nothing: fit again on what --out holds from an "
                                                        "earlier build (after upgrading chipfit)")] = False,
) -> None:
    """Train a latency predictor for a runtime on this machine: kernels measured alone and inside whole networks,
    fitted per kernel type, corrected on whole networks. An interrupted build run again on the same --out keeps its
    measurements; --refit fits again on them without measuring."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from chipfit.deploy.build import build_predictor

    if runtime not in ("ort", "openvino"):
        fail(f"--runtime must be ort or openvino, not {runtime!r}")
    if (out / "predictor.json").exists() and not refit:
        fail(f"{out} holds a predictor already; choose another --out or delete it (its samples.jsonl is kept for "
              "a rebuild)")
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True)) as bar:
            task = bar.add_task("starting", total=1.0)
            predictor, report = build_predictor(out, runtime=runtime, minutes=minutes, threads=threads, seed=seed,
                                                networks=networks, refit=refit,
                                                progress=lambda msg, frac: bar.update(task, description=msg,
                                                                                      completed=frac))
    except (ValueError, OSError) as e:
        fail(str(e))
    _show(out)


@predictor_app.command("show")
def show_cmd(folder: Annotated[Path, typer.Argument(help="a predictor folder")]) -> None:
    """What a predictor was built on, its kernel types and their cross-validated error, the fusion it read."""
    _show(folder)


def _show(folder: Path) -> None:
    from chipfit.deploy.predictor import Predictor

    try:
        p = Predictor.load(folder, check=False)
    except ValueError as e:
        fail(str(e))
    m = p.manifest
    con = console
    env, build = m.get("environment", {}), m.get("build", {})
    con.print(f"predictor {folder}: {env.get('runtime')} {env.get('runtime_version')}, {env.get('threads')} thread(s),"
              f" {env.get('cpu')}", highlight=False, markup=False)
    if build:
        con.print(f"built {build.get('when')} in {build.get('minutes', 0):.1f} min: {build.get('samples')} kernel "
                  f"samples, {build.get('networks')} whole networks", highlight=False)
    t = Table("kernel type", "samples", "model", "CV error (time-weighted)")
    for name, mod in sorted(p.models.items()):
        t.add_row(name, str(mod.samples), "trees" if mod.booster is not None else "scale",
                  "-" if mod.cv_error is None else f"{100 * mod.cv_error:.0f}%")
    con.print(t)
    corr = m.get("correction", {})
    if corr:
        scales = ", ".join(f"{g} x{s:.2f}" for g, s in corr.get("scales", {}).items())
        out = corr.get("outliers") or []
        left = f", {len(out)} more left out as outliers" if out else ""
        con.print(f"whole-network correction ({corr.get('networks')} networks{left}, fit RMSPE "
                  f"{100 * corr.get('train_rmspe', float('nan')):.1f}%): kernels {scales}; + "
                  f"{1e6 * corr['per_kernel_s']:.2f} us per kernel + {1e6 * corr['per_view_s']:.2f} us per view + "
                  f"{1e9 * corr.get('per_weight_byte_s', 0):.3f} ns per weight byte + "
                  f"{1e9 * corr.get('per_act_byte_s', 0):.3f} ns per activation byte + "
                  f"{1e6 * corr['offset_s']:.1f} us", highlight=False)
    fused = {k: v for k, v in m.get("fusion", {}).get("chains", {}).items()}
    if fused:
        con.print("fusion read from the runtime (followers absorbed by the head): "
                  + json.dumps(fused), highlight=False, markup=False)
