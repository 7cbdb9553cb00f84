"""The `chipfit` command: one verb per capability.

Every verb takes the model as its first argument (a model spec, :mod:`chipfit.load`), the target as ``--hw`` (a chip
name, a YAML file or a SCALE-Sim ``.cfg``), the precision as ``--precision`` and fusion as ``--fused/--unfused``
(fused by default, as deployment compilers run a network). User mistakes end with a one-line message on stderr and
exit code 2, never a traceback: every verb runs inside :func:`user_errors`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from chipfit.hw._cli import hw_app

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Design vision networks that run fast and cheaply on low-power AI chips.")
app.add_typer(hw_app, name="hw", help="Chip profiles: list, show, calibrate this machine.")
# Piped output gets wide tables instead of rich's 80-column fallback.
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True, soft_wrap=True)

MODEL_HELP = ("built-in name (chipfit models), package.module:factory, .onnx, ModelConfig .json, checkpoint or run "
              "folder")
HW_HELP = "target: chip name (chipfit hw list), YAML file or SCALE-Sim .cfg"
PRECISION_HELP = "fp32, fp16, int8, int4, binary or wXaY (X-bit weights, Y-bit activations)"
FUSED_HELP = "fused: each conv/linear runs with its BN, activation and element-wise followers as one kernel"


def fail(message: str, code: int = 2) -> None:
    """Print a user-facing error and exit; never a traceback for a user's mistake."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A one-line warning on stderr (deprecations, unsupported ops)."""
    err.print(escape(message), highlight=False)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from chipfit.cost import CaptureError  # a RuntimeError raised for the model's own failure on its input

    return (ValueError, OSError, CaptureError, FloatingPointError)  # the last: training diverged (a NaN loss)


@contextmanager
def user_errors() -> Iterator[None]:
    """The one error path: a user's mistake (bad value, missing or unwritable file, a model that fails on its input)
    becomes ``error: ...`` and exit code 2; Ctrl-C exits 130 with the message it carries."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt as e:
        note(str(e) or "interrupted")
        raise typer.Exit(130) from None
    except Exception as e:
        if isinstance(e, _user_error_types()):
            fail(str(e))
        raise


def _deprecated_arch(hw: str | None, arch: str | None) -> str | None:
    """``--arch`` is the old name of ``--hw`` (and old architecture names of chip names); say so, once."""
    if arch is not None:
        if hw is not None:
            fail("give --hw only (--arch is its old name)")
        note("deprecated: --arch is now --hw (one name for a target across verbs)")
        hw = arch
    if hw is not None:
        from chipfit.hw import deprecated_name

        new = deprecated_name(hw)
        if new is not None:
            note(f"deprecated: {hw} is now {new} (--hw {new}); the old name works for one release")
    return hw


def _outputs_apart(inputs: list[str | Path | None], outputs: list[Path | None]) -> None:
    """Never write over an input, nor two outputs to one file: refuse before any work is done."""
    ins = [Path(p).expanduser().resolve() for p in inputs if p is not None and Path(p).expanduser().is_file()]
    outs = [Path(p).expanduser().resolve() for p in outputs if p is not None]
    for o in outs:
        if o in ins:
            fail(f"{o} is an input of this command: writing there would destroy it; choose another output file")
    if len(set(outs)) < len(outs):
        fail("two outputs (--json, --csv, --plot) name the same file: give each its own")


def _write_json(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    console.print(f"wrote {escape(str(path))}", highlight=False)


@app.command()
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
        _outputs_apart([model, hw], [json_out, csv_out, plot, plot and plot.with_name(plot.stem + "_layers.png")])
        prof = run_profile(model, input_shape=input, hw=_deprecated_arch(hw, None), precision=precision,
                           fused=fused)
        print_profile(prof, console, by=by, top=top)
        if prof.unsupported:
            n = sum(prof.unsupported.values())
            note(f"warning: {n} op(s) of {len(prof.unsupported)} kind(s) have no cost handler and are listed under "
                 f"'unsupported': {', '.join(prof.unsupported)}")
        if json_out:
            _write_json(json_out, prof.to_json())
        if csv_out:
            console.print(f"wrote {escape(str(write_csv(prof, csv_out)))}", highlight=False)
        if plot:
            from chipfit.report.plots import latency_bars, roofline_plot

            roof = roofline_plot(prof, plot)
            bars = latency_bars(prof, plot.with_name(plot.stem + "_layers.png"))
            console.print(f"wrote {escape(str(roof))} and {escape(str(bars))}", highlight=False)


@app.command()
def models(
    family: Annotated[str | None, typer.Option(help="only this family, e.g. quadranet")] = None,
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
            t.add_row(name, e.family, "x".join(map(str, e.input_shape)), params, macs, escape(e.description))
        console.print(t)


@app.command()
def train(
    model: Annotated[str | None, typer.Argument(help="built-in name (chipfit models) or a ModelConfig JSON file")]
    = None,
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree (train/<class>/*.png)")] = "",
    out: Annotated[Path | None, typer.Option(help="run folder: last.pt, best.pt, metrics.jsonl, report.json")]
    = None,
    model_opt: Annotated[str | None, typer.Option("--model", help="the model, as an option (old form)")] = None,
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
    force: Annotated[bool, typer.Option("--force", help="start afresh in an --out that holds files, over them")]
    = False,
) -> None:
    """Train a network on real data; Ctrl-C saves a checkpoint that --resume continues."""
    with user_errors():
        from chipfit.api import train as run_train
        from chipfit.train import TrainConfig

        if model is not None and model_opt is not None and model != model_opt:
            fail(f"two models given: {model!r} and --model {model_opt!r}")
        spec = model or model_opt
        if spec is None:
            fail("give the model: chipfit train MODEL --data ... --out DIR")
        if not data or out is None:
            fail("give --data (fashion-mnist or a class-per-folder tree) and --out DIR")
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                          warmup_epochs=warmup_epochs, label_smoothing=label_smoothing, ema_decay=ema, seed=seed,
                          out=str(out), resume=resume, force=force)
        result, report = run_train(spec, data, cfg, crop_pad=crop_pad)
        if report is None:
            raise typer.Exit(130)
        console.print(f"test accuracy {report['test_accuracy']:.4f} ({report['model']}, {report['params']:,} params, "
                      f"{report['macs'] / 1e6:.2f} M MACs, {report['train_seconds']:.0f} s); wrote {out}/report.json, "
                      f"{out}/confusion.png", highlight=False, markup=False)


@app.command("eval")
def eval_cmd(
    checkpoint: Annotated[str, typer.Argument(help="a checkpoint (.pt) or a run folder (chipfit train or compress)")],
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree")] = "fashion-mnist",
    split: Annotated[str, typer.Option(help="test or val")] = "test",
) -> None:
    """Accuracy of a trained checkpoint, overall and per class."""
    with user_errors():
        from rich.table import Table

        from chipfit.data import load_data
        from chipfit.load import checkpoint_path, load_model
        from chipfit.train import evaluate

        if split not in ("test", "val"):
            fail(f"--split must be test or val, not {split!r}")
        if checkpoint_path(checkpoint) is None:
            fail(f"{checkpoint}: not a checkpoint (.pt) or a run folder holding best.pt or compressed.pt")
        loaded = load_model(checkpoint)
        bundle = load_data(data)
        if loaded.norm:
            bundle.mean, bundle.std = loaded.norm["mean"], loaded.norm["std"]
        res = evaluate(loaded.module, bundle, split, per_class=True)
        t = Table(title=escape(f"{loaded.path}: {split} accuracy {res['accuracy']:.4f} on {res['n']} images"))
        t.add_column("class")
        t.add_column("accuracy", justify="right")
        for c, a in res["per_class"].items():
            t.add_row(escape(c), f"{a:.3f}")
        console.print(t)


@app.command()
def simulate(
    model: Annotated[str, typer.Argument(help=MODEL_HELP + ", or a SCALE-Sim topology .csv")],
    hw: Annotated[str | None, typer.Option("--hw", help=HW_HELP + " (one with an array: chipfit hw list)")] = None,
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

        from chipfit.report.tables import joules, seconds, si

        if str(model).lower().endswith(".csv"):  # a topology needs neither the loader nor torch: first output sooner
            from chipfit.hw.sim import simulate as run_simulate
        else:
            from chipfit.api import simulate as run_simulate
        if batch < 1 or chips < 1:
            fail("--batch and --chips must be at least 1")
        hw = _deprecated_arch(hw, arch)
        if hw is None:
            fail("give the target: --hw NAME (a chip with an array, chipfit hw list), a YAML file or a SCALE-Sim .cfg")
        _outputs_apart([model, hw], [json_out, csv_out, plot])
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
            _write_json(json_out, res.to_json())
        if csv_out:
            console.print(f"wrote {escape(str(res.to_csv(csv_out)))}", highlight=False)
        if plot:
            from chipfit.report.plots import cycle_bars

            console.print(f"wrote {escape(str(cycle_bars(res, plot)))}", highlight=False)


@app.command()
def compress(
    checkpoint: Annotated[str, typer.Argument(help="a trained checkpoint (.pt) or a run folder holding best.pt")],
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
    distill_from: Annotated[str | None, typer.Option(help="teacher checkpoint or run folder")] = None,
    fold: Annotated[bool, typer.Option(help="fold BatchNorm into the preceding conv/linear")] = True,
    hw: Annotated[str | None, typer.Option("--hw", help="target with an array for modelled latency/energy "
                                                        "(chipfit hw list); default edge-npu")] = None,
    lr: Annotated[float, typer.Option(min=0.0, help="learning rate of fine-tuning and QAT")] = 5e-4,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    seed: int = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue interrupted fine-tuning / QAT in --out")] = False,
    force: Annotated[bool, typer.Option("--force", help="write into an --out that holds files, over them")] = False,
    arch: Annotated[str | None, typer.Option("--arch", hidden=True, help="old name of --hw")] = None,
) -> None:
    """Quantize, prune, distil and fold a trained network; report accuracy, size, MACs, latency and energy."""
    with user_errors():
        from rich.table import Table

        from chipfit.api import compress as run_compress
        from chipfit.compress import CompressConfig, DistillConfig, PruneConfig, QuantConfig
        from chipfit.report.tables import joules, seconds, si

        if quantize is None and prune is None and distill_from is None and not fold:
            fail("nothing to do: give --quantize, --prune, --distill-from or --fold")
        if structured and prune is None:
            fail("--structured needs --prune FRACTION")
        target = _deprecated_arch(hw, arch) or "edge-npu"
        q = QuantConfig.from_name(quantize, per_channel=per_channel, symmetric=not asymmetric,
                                  calibration=calib_method, quadratic=quadratic, keep_8bit=keep_8bit) \
            if quantize else None
        pc = PruneConfig(prune, structured, scope=prune_scope, groups=prune_groups,
                         allocation=prune_allocation) if prune is not None else None
        distill = DistillConfig(distill_from) if distill_from else None
        cfg = CompressConfig(fold=fold, quant=q, prune=pc, distill=distill,
                             finetune_epochs=finetune, qat_epochs=qat, calib_images=calib, lr=lr,
                             batch_size=batch_size, arch=target, seed=seed)
        res = run_compress(checkpoint, cfg, data, out=out, resume=resume, force=force)
        t = Table(title=escape(f"{checkpoint} compressed ({', '.join(s['step'] for s in res.steps[1:]) or 'nothing'}), "
                               f"modelled on {res.compressed['arch']}"))
        for col in ("", "accuracy", "size", "MACs", "latency", "energy", "ORT CPU latency"):
            t.add_column(col, justify="left" if not col else "right")
        for label, r in (("baseline", res.baseline), ("compressed", res.compressed)):
            acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
            ort = r.get("ort_latency_s")
            t.add_row(label, acc, si(r["size_bytes"], "B"), si(r["macs"]), seconds(r["latency_s"]),
                      joules(r["energy_j"]), seconds(ort) if ort else "-")
        console.print(t)
        for s in res.steps[1:]:
            extra = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("step", "accuracy"))
            acc = "" if s.get("accuracy") is None else f"accuracy {s['accuracy']:.4f}"
            console.print(f"  {s['step']}: {acc}{'; ' + extra if extra else ''}", highlight=False, markup=False)
        if res.onnx:
            diff = res.onnx.get("max_abs_diff")
            console.print(f"wrote {out}/compressed.pt, {out}/model.onnx ({res.onnx.get('format')}"
                          + (f", ONNX Runtime vs PyTorch max |diff| {diff:.2e}" if diff is not None else "")
                          + f"), {out}/report.json", highlight=False, markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
