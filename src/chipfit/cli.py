"""The `chipfit` command: one verb per capability.

User mistakes end with a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chipfit.hw._cli import hw_app

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Design vision networks that run fast and cheaply on low-power AI chips.")
app.add_typer(hw_app, name="hw", help="Chip profiles: list, show, calibrate this machine.")
# Piped output gets wide tables instead of rich's 80-column fallback.
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error and exit; never a traceback for a user's mistake."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command()
def profile(
    model: Annotated[str, typer.Argument(help="built-in name (chipfit models), package.module:factory, or .onnx")],
    hw: Annotated[str | None, typer.Option("--hw", help="chip name (chipfit hw list) or YAML file")] = None,
    input: Annotated[str | None, typer.Option("--input", help="input shape, e.g. 1x3x224x224")] = None,
    dtype: Annotated[str, typer.Option(help="fp32, fp16, int8, int4, binary or wXaY")] = "fp32",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the whole profile as JSON")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write one row per layer")] = None,
    plot: Annotated[Path | None, typer.Option(help="roofline PNG; latency bars go beside it (_layers.png)")] = None,
    by: Annotated[str, typer.Option(help="table rows: layer, module or op")] = "layer",
    unfused: Annotated[bool, typer.Option("--unfused", help="report unfused execution (default: fused)")] = False,
    top: Annotated[int, typer.Option(help="rows in the table")] = 15,
) -> None:
    """What a network costs: params, MACs, FLOPs, memory traffic, structure, guidelines; roofline on a chip."""
    from chipfit.api import profile as run_profile
    from chipfit.cost import CaptureError, OnnxError
    from chipfit.report.tables import print_profile, write_csv

    if by not in ("layer", "module", "op"):
        fail(f"--by must be layer, module or op, not {by!r}")
    try:
        prof = run_profile(model, input_shape=input, hw=hw, dtype=dtype, fused=not unfused)
    except (ValueError, CaptureError, OnnxError, FileNotFoundError) as e:
        fail(str(e))
    if plot is not None and prof.hardware is None:
        fail("--plot needs a chip: add --hw NAME (chipfit hw list)")
    print_profile(prof, console, by=by, top=top)
    if prof.unsupported:
        n = sum(prof.unsupported.values())
        err.print(f"warning: {n} op(s) of {len(prof.unsupported)} kind(s) have no cost handler and are listed under "
                  f"'unsupported': {', '.join(prof.unsupported)}", highlight=False)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(prof.to_json())
        console.print(f"wrote {json_out}")
    if csv_out:
        console.print(f"wrote {write_csv(prof, csv_out)}")
    if plot:
        from chipfit.report.plots import latency_bars, roofline_plot

        roof = roofline_plot(prof, plot)
        bars = latency_bars(prof, plot.with_name(plot.stem + "_layers.png"))
        console.print(f"wrote {roof} and {bars}")


@app.command()
def models(
    family: Annotated[str | None, typer.Option(help="only this family, e.g. quadranet")] = None,
    counts: Annotated[bool, typer.Option(help="count params and MACs at each model's input (slower)")] = True,
) -> None:
    """List the built-in networks with their parameters and MACs."""
    from rich.progress import track
    from rich.table import Table

    from chipfit.api import profile as run_profile
    from chipfit.models import get_entry, list_models
    from chipfit.report.tables import si

    names = list_models(family)
    if not names:
        fail(f"no models in family {family!r}")
    t = Table(title=f"{len(names)} built-in networks")
    for col in ("name", "family", "input", "params", "MACs", "description"):
        t.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for name in track(names, description="counting", console=err, disable=not counts):
        e = get_entry(name)
        params = macs = "-"
        if counts:
            p = run_profile(name)
            params, macs = si(p.total.params), si(p.total.macs)
        t.add_row(name, e.family, "x".join(map(str, e.input_shape)), params, macs, e.description)
    console.print(t)


@app.command()
def train(
    model: Annotated[str, typer.Option(help="built-in name (chipfit models) or a ModelConfig JSON file")],
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree (train/<class>/*.png)")],
    out: Annotated[Path, typer.Option(help="run folder: last.pt, best.pt, metrics.jsonl, report.json")],
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-3,
    weight_decay: Annotated[float, typer.Option(min=0.0)] = 0.05,
    warmup_epochs: Annotated[float, typer.Option(min=0.0)] = 1.0,
    label_smoothing: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.1,
    ema: Annotated[float | None, typer.Option(help="EMA decay of the weights, e.g. 0.999")] = None,
    crop_pad: Annotated[int, typer.Option(help="random-crop augmentation: zero padding in pixels (0: off)")] = 2,
    seed: int = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
) -> None:
    """Train a network on real data; Ctrl-C saves a checkpoint that --resume continues."""
    from chipfit.data import IdxError
    from chipfit.train import CheckpointError, TrainConfig
    from chipfit.train.run import run

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      warmup_epochs=warmup_epochs, label_smoothing=label_smoothing, ema_decay=ema, seed=seed,
                      out=str(out), resume=resume)
    try:
        result, report = run(model, data, cfg, crop_pad=crop_pad)
    except (ValueError, FileNotFoundError, FileExistsError, IdxError, CheckpointError) as e:
        fail(str(e))
    if report is None:
        raise typer.Exit(130)
    console.print(f"test accuracy {report['test_accuracy']:.4f} ({report['model']}, {report['params']:,} params, "
                    f"{report['macs'] / 1e6:.2f} M MACs, {report['train_seconds']:.0f} s); wrote {out}/report.json, "
                    f"{out}/confusion.png", highlight=False)


@app.command("eval")
def eval_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="a checkpoint (.pt) or a run folder holding best.pt")],
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree")] = "fashion-mnist",
    split: Annotated[str, typer.Option(help="test or val")] = "test",
) -> None:
    """Accuracy of a trained checkpoint, overall and per class."""
    from rich.table import Table

    from chipfit.data import IdxError, load_data
    from chipfit.train import CheckpointError, evaluate
    from chipfit.train.run import model_from_checkpoint

    if split not in ("test", "val"):
        fail(f"--split must be test or val, not {split!r}")
    path = checkpoint / "best.pt" if checkpoint.is_dir() else checkpoint
    try:
        model, state = model_from_checkpoint(path)
        bundle = load_data(data)
        norm = json.loads(state.get("norm", "{}"))
        if norm:
            bundle.mean, bundle.std = norm["mean"], norm["std"]
        res = evaluate(model, bundle, split, per_class=True)
    except (ValueError, FileNotFoundError, IdxError, CheckpointError, RuntimeError) as e:
        fail(str(e))
    t = Table(title=f"{path}: {split} accuracy {res['accuracy']:.4f} on {res['n']} images")
    t.add_column("class")
    t.add_column("accuracy", justify="right")
    for c, a in res["per_class"].items():
        t.add_row(c, f"{a:.3f}")
    console.print(t)


@app.command()
def simulate(
    model: Annotated[str, typer.Argument(help="built-in name, package.module:factory, .onnx, or a SCALE-Sim topology "
                                              ".csv")],
    arch: Annotated[str, typer.Option("--arch", help="architecture name (tpu-v1-like, eyeriss-like, diannao-like, "
                                                     "dadiannao-like, edge-npu), YAML file or SCALE-Sim .cfg")],
    dataflow: Annotated[str | None, typer.Option(help="ws, os or is (default: the architecture's)")] = None,
    batch: Annotated[int, typer.Option(help="images per run")] = 1,
    bits: Annotated[int, typer.Option(help="bits of weights and activations: 4, 8, 16 or 32")] = 8,
    weight_bits: Annotated[int | None, typer.Option(help="narrower weights (1, 2, 4, ...): their bytes only")] = None,
    chips: Annotated[int, typer.Option(help="split the network over K chips as a layer pipeline")] = 1,
    sparsity: Annotated[str | None, typer.Option(help="weight sparsity: N:M (2:4) or the zero fraction (0.5)")] = None,
    input: Annotated[str | None, typer.Option("--input", help="input shape, e.g. 1x3x224x224")] = None,
    fuse: Annotated[bool, typer.Option("--fuse", help="run each conv/linear with its BN, activation and "
                                                      "element-wise followers as one layer")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write per-layer records and totals as JSON")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="write one row per layer")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG of compute and stall cycles per layer")] = None,
    top: Annotated[int, typer.Option(help="rows in the table (the layers with the most cycles)")] = 25,
) -> None:
    """Cycles, stalls, DRAM traffic and energy of a network on a systolic-array accelerator, layer by layer."""
    from rich.table import Table

    from chipfit.cost import CaptureError, OnnxError
    from chipfit.hw.sim import simulate as run_simulate
    from chipfit.report.tables import seconds, si

    if batch < 1 or chips < 1:
        fail("--batch and --chips must be at least 1")
    try:
        res = run_simulate(model, arch, dataflow=dataflow, batch=batch, bits=bits, chips=chips, sparsity=sparsity,
                           input_shape=input, weight_bits=weight_bits, fuse=fuse)
    except (ValueError, CaptureError, OnnxError, FileNotFoundError) as e:
        fail(str(e))
    a = res.arch
    rows = sorted(range(len(res.layers)), key=lambda i: -res.layers[i].total_cycles)[:top]
    shown = "" if len(rows) == len(res.layers) else f", the {len(rows)} with the most cycles"
    t = Table(title=f"{res.model} on {a.name}: {a.rows}x{a.cols} {res.dataflow}, {res.bits}-bit, batch {res.batch}"
                    f"{', ' + res.sparsity + ' sparsity' if res.sparsity else ''} ({len(res.layers)} layers{shown})")
    cols = ["layer", "kind"] + (["chip"] if chips > 1 else []) + ["cycles", "stall", "util", "MACs", "DRAM rd",
                                                                  "DRAM wr", "energy"]
    for col in cols:
        t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for i in sorted(rows):
        x = res.layers[i]
        cells = [x.name, x.kind] + ([str(x.chip)] if chips > 1 else [])
        cells += [f"{x.total_cycles:,}", f"{x.stall_cycles:,}", f"{x.utilisation:.0%}" if x.macs else "-", si(x.macs),
                  si(x.dram_read_bytes, "B"), si(x.dram_write_bytes, "B"), _joules(x.energy_j)]
        t.add_row(*cells)
    console.print(t)
    tot = res.total
    lines = [f"cycles {tot['cycles']:,} ({tot['stall_cycles']:,} stalled) at {si(a.clock_hz, 'Hz')}: "
             f"{seconds(tot['time_s'])} per batch of {res.batch}" + (" (pipeline latency)" if chips > 1 else ""),
             f"throughput {tot['inferences_per_s']:,.1f} inferences/s, energy {_joules(tot['energy_j'])} per batch, "
             f"{tot['inferences_per_j']:,.1f} inferences/J",
             f"MACs {si(tot['macs'])}, DRAM {si(tot['dram_read_bytes'], 'B')} read + "
             f"{si(tot['dram_write_bytes'], 'B')} written"]
    if res.pipeline is not None:
        p = res.pipeline
        lines.append(f"{len(p.stages)} chips, links {si(p.link_bytes_per_s, 'B/s')}: slowest stage chip {p.bottleneck} "
                     f"({seconds(p.period_s)} per batch)")
    for line in lines + [f"note: {n}" for n in res.notes]:
        console.print(line, highlight=False)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(res.to_json())
        console.print(f"wrote {json_out}")
    if csv_out:
        console.print(f"wrote {res.to_csv(csv_out)}")
    if plot:
        from chipfit.hw.sim.plot import cycle_bars

        console.print(f"wrote {cycle_bars(res, plot)}")


@app.command()
def compress(
    checkpoint: Annotated[Path, typer.Argument(help="a trained checkpoint (.pt) or a run folder holding best.pt")],
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree")],
    out: Annotated[Path, typer.Option(help="folder: compressed.pt, model.onnx, report.json")],
    quantize: Annotated[str | None, typer.Option(help="int8, int4 (weights; 8-bit activations), binary, fp16")] = None,
    per_channel: Annotated[bool, typer.Option("--per-channel", help="one weight scale per output channel")] = False,
    asymmetric: Annotated[bool, typer.Option("--asymmetric", help="weights with a zero point (not for binary)")]
    = False,
    keep_8bit: Annotated[str, typer.Option(help="below 8 bits, layers that keep 8-bit weights: none, edges (first "
                                                "conv, classifier) or edges+depthwise")] = "none",
    calib: Annotated[int, typer.Option(min=1, help="training images to calibrate activation ranges")] = 512,
    calib_method: Annotated[str, typer.Option(help="minmax, percentile, mse or entropy")] = "minmax",
    quadratic: Annotated[str, typer.Option(help="quadratic layers: quantize the input only, the branches, or the "
                                                "branches and their product")] = "product",
    qat: Annotated[int, typer.Option(min=0, help="quantization-aware training epochs (0: post-training)")] = 0,
    prune: Annotated[float | None, typer.Option(help="fraction of weights (or channels with --structured) to remove")]
    = None,
    structured: Annotated[bool, typer.Option("--structured", help="remove whole channels")] = False,
    prune_scope: Annotated[str, typer.Option(help="unstructured: one threshold for all layers (global) or the same "
                                                  "fraction per layer (layer)")] = "global",
    prune_groups: Annotated[str, typer.Option(help="--structured: cut every channel group (all) or leave the residual "
                                                   "streams whole (hidden)")] = "all",
    prune_allocation: Annotated[str, typer.Option(help="--structured: the same fraction of every group (uniform) or "
                                                       "per-group fractions from each group's measured effect on "
                                                       "the outputs, for the same MACs (sensitivity)")] = "uniform",
    finetune: Annotated[int, typer.Option(min=0, help="fine-tuning epochs after pruning / with distillation")] = 2,
    distill_from: Annotated[Path | None, typer.Option(help="teacher checkpoint or run folder")] = None,
    fold: Annotated[bool, typer.Option(help="fold BatchNorm into the preceding conv/linear")] = True,
    arch: Annotated[str, typer.Option(help="accelerator for modelled latency/energy (chipfit simulate --arch)")]
    = "edge-npu",
    lr: Annotated[float, typer.Option(min=0.0, help="learning rate of fine-tuning and QAT")] = 5e-4,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    seed: int = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue interrupted fine-tuning / QAT in --out")] = False,
) -> None:
    """Quantize, prune, distil and fold a trained network; report accuracy, size, MACs, latency and energy."""
    from rich.table import Table

    from chipfit.compress import CompressConfig, DistillConfig, PruneConfig, QuantConfig
    from chipfit.compress import compress as run_compress
    from chipfit.data import IdxError, load_data
    from chipfit.train import CheckpointError
    from chipfit.train.run import model_from_checkpoint

    if quantize is None and prune is None and distill_from is None and not fold:
        fail("nothing to do: give --quantize, --prune, --distill-from or --fold")
    if structured and prune is None:
        fail("--structured needs --prune FRACTION")
    if out.exists() and (out / "report.json").exists() and not resume:
        fail(f"{out} already holds a compressed network (report.json): choose another --out")
    path = checkpoint / "best.pt" if checkpoint.is_dir() else checkpoint
    try:
        q = QuantConfig.from_name(quantize, per_channel=per_channel, symmetric=not asymmetric,
                                  calibration=calib_method, quadratic=quadratic, keep_8bit=keep_8bit) \
            if quantize else None
        pc = PruneConfig(prune, structured, scope=prune_scope, groups=prune_groups,
                         allocation=prune_allocation) if prune is not None else None
        cfg = CompressConfig(fold=fold, quant=q, prune=pc,
                             distill=DistillConfig(str(distill_from)) if distill_from else None,
                             finetune_epochs=finetune, qat_epochs=qat, calib_images=calib, lr=lr,
                             batch_size=batch_size, arch=arch, seed=seed)
        model, state = model_from_checkpoint(path)
        if "compress_config" in state:
            fail(f"{path} is already compressed; compress the float checkpoint it came from")
        bundle = load_data(data, seed=seed)
        norm = json.loads(state.get("norm", "{}"))
        if norm:
            bundle.mean, bundle.std = norm["mean"], norm["std"]
        name = json.loads(state["model_spec"]).get("name")
        res = run_compress(model, cfg, bundle, out=out, resume=resume, model_name=name)
    except (ValueError, FileNotFoundError, FileExistsError, IdxError, CheckpointError) as e:
        fail(str(e))
    except KeyboardInterrupt as e:
        err.print(str(e) or "interrupted", highlight=False)
        raise typer.Exit(130) from None
    from chipfit.report.tables import seconds, si

    t = Table(title=f"{path} compressed ({', '.join(s['step'] for s in res.steps[1:]) or 'nothing'}), "
                    f"modelled on {res.compressed['arch']}")
    for col in ("", "accuracy", "size", "MACs", "latency", "energy", "ORT CPU latency"):
        t.add_column(col, justify="left" if not col else "right")
    for label, r in (("baseline", res.baseline), ("compressed", res.compressed)):
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        ort = r.get("ort_latency_s")
        t.add_row(label, acc, si(r["size_bytes"], "B"), si(r["macs"]), seconds(r["latency_s"]),
                  _joules(r["energy_j"]), seconds(ort) if ort else "-")
    console.print(t)
    for s in res.steps[1:]:
        extra = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("step", "accuracy"))
        acc = "" if s.get("accuracy") is None else f"accuracy {s['accuracy']:.4f}"
        console.print(f"  {s['step']}: {acc}{'; ' + extra if extra else ''}", highlight=False)
    if res.onnx:
        diff = res.onnx.get("max_abs_diff")
        console.print(f"wrote {out}/compressed.pt, {out}/model.onnx ({res.onnx.get('format')}"
                      + (f", ONNX Runtime vs PyTorch max |diff| {diff:.2e}" if diff is not None else "")
                      + f"), {out}/report.json", highlight=False)

def _joules(j: float) -> str:
    for factor, unit in ((1, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if j >= factor:
            return f"{j / factor:.3g} {unit}"
    return f"{j / 1e-12:.3g} pJ"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
