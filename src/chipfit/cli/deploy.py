"""`chipfit deploy`, `chipfit measure`, `chipfit predict` and `chipfit predictor build|show`: exported, measured
and predicted latency on a runtime and machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from chipfit.cli._common import (
    HW_HELP,
    MODEL_HELP,
    console,
    deprecated_arch,
    err,
    fail,
    note,
    outputs_apart,
    user_errors,
    write_json,
)

MEASURE_RUNTIMES = ("ort", "openvino", "torch", "remote")


def _file_to_measure(spec: str, runtime: str, shape: tuple[int, ...] | None, folder: Path) -> tuple[Path, bool]:
    """The file ``chipfit measure`` times: the one given, or the chipfit model spec exported into ``folder`` (ONNX;
    a torch.export ``.pt2`` for the torch runtime); (file, whether it was exported)."""
    path = Path(spec).expanduser()
    if runtime == "remote":
        if path.is_file() and path.suffix.lower() not in (".json", ".pt", ".pth"):
            return path, False
        if not path.exists() and "/" in spec and ":" not in spec:  # a path on the device, for the runner
            return path, False
    elif path.suffix.lower() in (".onnx", ".xml", ".pt2"):
        return path, False
    from chipfit.load import load_model

    loaded = load_model(spec)
    if loaded.module is None:
        return path, False
    shape = shape or loaded.input_shape
    if shape is None:
        raise ValueError(f"give the input shape of {loaded.name} (--input-shape 1x3x32x32)")
    module = loaded.module.eval()
    import warnings

    import torch

    from chipfit.deploy import export_float, export_qdq, onnx_format

    out = folder / f"{loaded.name}.{'pt2' if runtime == 'torch' else 'onnx'}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the tracer's notes on the network's own checks
            if runtime == "torch":
                torch.export.save(torch.export.export(module, (torch.zeros(shape),)), out)
            else:
                (export_qdq if onnx_format(module) == "QDQ" else export_float)(module, out, shape)
    except Exception as e:  # the exporter's own failure on the user's network: one line
        first = (str(e).strip().splitlines() or ["(no message)"])[0][:300]
        raise ValueError(f"cannot export {spec} for the {runtime} runtime: {type(e).__name__}: {first}") from None
    return out, True


def measure(
    model: Annotated[str, typer.Argument(help=".onnx, OpenVINO .xml, torch.export .pt2, or a chipfit model spec ("
                                              "exported for the runtime): " + MODEL_HELP)],
    runtime: Annotated[str, typer.Option(help="ort (ONNX Runtime), openvino, torch (a .pt2) or remote (your own "
                                              "benchmark command, --runner)")] = "ort",
    threads: Annotated[int, typer.Option(min=1, help="intra-op threads (OMP/MKL threads too)")] = 1,
    processes: Annotated[int, typer.Option(min=1, help="fresh processes, one series of runs each")] = 3,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs per process")] = 30,
    warmup: Annotated[int, typer.Option(min=0, help="untimed runs before them")] = 5,
    runner: Annotated[str | None, typer.Option(help="remote: the benchmark command, {model} where the path goes, "
                                                    "e.g. 'ssh board ./benchmark_model --graph={model}'; run "
                                                    "without a shell unless it holds | > ; &&")] = None,
    parse: Annotated[str | None, typer.Option(help="remote: REGEX with one group around the number (optional "
                                                   "group (?P<unit>...)); every match is a sample")] = None,
    unit: Annotated[str, typer.Option(help="remote: the numbers' unit: us, ms or s")] = "ms",
    timeout: Annotated[float, typer.Option(min=0.001, help="seconds one process may take before it is killed")]
    = 300.0,
    input_shape: Annotated[str | None, typer.Option("--input-shape", "--input", help="input shape, e.g. 1x3x32x32; "
                                                    "default the model's own")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the measurement, every raw sample "
                                                                 "included, as JSON")] = None,
) -> None:
    """Measure latency by a benchmark protocol: fresh processes, warm-up, every sample kept, the machine's load read."""
    with user_errors():
        import dataclasses
        import tempfile

        from rich.progress import Progress
        from rich.table import Table

        from chipfit.api import parse_shape
        from chipfit.deploy import measure as run_measure
        from chipfit.report.tables import seconds

        if runtime not in MEASURE_RUNTIMES:
            fail(f"--runtime must be one of {', '.join(MEASURE_RUNTIMES)}, not {runtime!r}")
        if runtime == "remote" and (runner is None or parse is None):
            fail("--runtime remote needs --runner 'CMD {model}' and --parse REGEX")
        if runtime != "remote" and (runner is not None or parse is not None):
            fail("--runner and --parse are for --runtime remote")
        outputs_apart([model], [json_out])
        shape = parse_shape(input_shape) if input_shape else None
        with tempfile.TemporaryDirectory(prefix="chipfit-measure-") as tmp:
            path, exported = _file_to_measure(model, runtime, shape, Path(tmp))
            # A bar on a terminal only: piped stderr keeps to warnings and errors.
            bar = Progress(console=err, transient=True, disable=not err.is_terminal)
            with bar:
                task = bar.add_task(escape(f"{runtime}: {path.name}"), total=processes)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done,
                               description=escape(f"{runtime}: {path.name}, process {min(done + 1, total)}/{total}"))

                m = run_measure(path, runtime=runtime, input_shape=shape, threads=threads, processes=processes,
                                repeats=repeats, warmup=warmup, runner=runner, parse=parse, unit=unit,
                                timeout_s=timeout, progress=progress)
        if exported:
            m = dataclasses.replace(m, model=model, settings={**m.settings, "exported_to": path.suffix.lstrip(".")})
        version = f" {m.runtime_version}" if m.runtime_version else ""
        t = Table(title=escape(f"{model}: {runtime}{version}"), show_header=False)
        t.add_column("")
        t.add_column("")
        load = "-" if m.load_before is None else f"{m.load_before:.2f} before, {m.load_after:.2f} after"
        for label, value in (("median", f"{seconds(m.median_s)} (median of per-process medians)"),
                             ("spread", f"{m.spread:.1%} ((max - min) / median)"), ("sigma", f"{m.sigma:.1%}"),
                             ("per process", ", ".join(seconds(x) for x in m.process_medians_s)),
                             ("protocol", m.protocol),
                             ("input", "x".join(map(str, m.input_shape)) if m.input_shape else "-"),
                             ("load", f"{load} on {m.cores} cores"), ("CPU", m.cpu)):
            t.add_row(label, escape(value))
        console.print(t)
        for w in m.warnings:
            note(f"warning: {w}")
        if json_out:
            write_json(json_out, m.to_json())


def predict(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    predictor: Annotated[Path, typer.Option("--predictor", help="a folder from `chipfit predictor build`")],
    input: Annotated[str | None, typer.Option("--input", help="input shape, e.g. 1x3x224x224")] = None,
    threads: Annotated[int | None, typer.Option(help="threads the latency is for (must match the predictor's)")] = None,
    any_machine: Annotated[bool, typer.Option("--any-machine", help="use a predictor built on another CPU or "
                                              "runtime version (its figures may not hold here)")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the prediction as an estimate record")] = None,
    top: Annotated[int, typer.Option(help="slowest kernels to list")] = 10,
) -> None:
    """Predicted latency of a network on the runtime and machine a predictor was built on, kernel by kernel."""
    with user_errors():
        import json as _json

        from rich.table import Table

        from chipfit.api import profile as run_profile
        from chipfit.deploy.predictor import Predictor

        pred = Predictor.load(predictor, check=not any_machine)
        if threads is not None:
            pred.check_threads(threads)
        prof = run_profile(model, input_shape=input)
        res = pred.predict(prof)
        env = pred.manifest["environment"]
        target = f"{env['runtime']} {env['runtime_version']}, {env['threads']} thread(s), {env['cpu']}"
        t = Table("kernel", "type", "predicted")
        for name, kind, s in sorted(res.kernels, key=lambda r: -(r[2] if r[2] == r[2] else 0))[:top]:
            t.add_row(escape(name), kind, "unknown" if s != s else f"{s * 1e6:.1f} us")
        console.print(t)
        console.print(f"{prof.model_name}: predicted {res.latency_s * 1e3:.3f} ms on {escape(target)} "
                      f"({len(res.kernels)} kernels, sum {res.kernel_s * 1e3:.3f} ms before the whole-network "
                      "correction)", highlight=False)
        if res.unknown:
            note(f"warning: {len(res.unknown)} kernel(s) of types this predictor never measured are NOT in the "
                 f"figure (a lower bound): {', '.join(res.unknown[:6])}" + (" ..." if len(res.unknown) > 6 else ""))
        for n in res.notes:
            if "no regressor covers" not in n:  # that one is the warning above
                note(f"note: {n}")
        if json_out:
            est = res.estimate(target, prof.model_name, prof.precision.name)
            write_json(json_out, _json.dumps(est.to_dict(), indent=2))


DEPLOY_RUNTIMES = ("ort", "openvino")


def deploy(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    out: Annotated[Path, typer.Option(help="the deploy folder: model.onnx (model_int8.onnx, model.xml/.bin), "
                                           "measurement.json, manifest.json")],
    hw: Annotated[str | None, typer.Option("--hw", help=HW_HELP + "; recorded, and its roofline estimate shown "
                                                        "beside the measured latency")] = None,
    runtime: Annotated[str, typer.Option(help="ort (ONNX Runtime) or openvino (adds model.xml/.bin)")] = "ort",
    quantize: Annotated[str | None, typer.Option(help="int8: ONNX Runtime static quantization (QDQ); a network chipfit "
                                                      "compress quantized is exported as it is")] = None,
    data: Annotated[str | None, typer.Option(help="calibrate and check on this data (fashion-mnist or a "
                                                  "class-per-folder tree); default random images, said in the "
                                                  "manifest")] = None,
    calib: Annotated[int, typer.Option(min=1, help="--quantize: images that calibrate the activation ranges")] = 64,
    input_shape: Annotated[str | None, typer.Option("--input-shape", "--input", help="input shape, e.g. 1x3x32x32 "
                                                    "(fixed batch); default the model's own")] = None,
    threads: Annotated[int, typer.Option(min=1, help="intra-op threads of the measurement")] = 1,
    processes: Annotated[int, typer.Option(min=1, help="fresh processes, one series of runs each")] = 3,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs per process")] = 30,
    no_measure: Annotated[bool, typer.Option("--no-measure", help="export, convert and check only")] = False,
    force: Annotated[bool, typer.Option("--force", help="write into an --out that holds files, over them")] = False,
) -> None:
    """Export a network to ONNX (and OpenVINO), check it against PyTorch and measure it: a folder with a manifest."""
    with user_errors():
        import warnings

        import torch
        from rich.table import Table

        from chipfit.api import parse_shape
        from chipfit.deploy import deploy_model
        from chipfit.deploy.bundle import WRITES
        from chipfit.deploy.onnx import ExportFallbackWarning
        from chipfit.load import checkpoint_path, load_model
        from chipfit.report.tables import seconds, si

        if runtime not in DEPLOY_RUNTIMES:
            fail(f"--runtime must be one of {', '.join(DEPLOY_RUNTIMES)}, not {runtime!r}")
        if quantize is not None and quantize != "int8":
            fail(f"--quantize takes int8 (ONNX Runtime's static quantization), not {quantize!r}; for int4, binary "
                 "or fp16 run chipfit compress first and deploy its folder")
        ckpt = checkpoint_path(model)
        if ckpt is not None and ckpt.expanduser().resolve().parent == out.expanduser().resolve():
            fail(f"--out {out} is the model's own folder: choose another --out")
        outputs_apart([model], [out / name for name in WRITES])
        target = deprecated_arch(hw, None)
        shape = parse_shape(input_shape) if input_shape else None
        loaded = load_model(model)
        shape = shape or loaded.input_shape
        if loaded.module is not None and shape is None:
            fail(f"give the input shape of {loaded.name} (--input-shape 1x3x32x32)")
        bundle = None
        if data is not None:
            from chipfit.data import load_data

            bundle = load_data(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExportFallbackWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the legacy exporter's notes (fallback)
            man = deploy_model(loaded.module if loaded.module is not None else loaded.onnx, out, input_shape=shape,
                               runtime=runtime, quantize=quantize, calib=bundle, calib_images=calib,
                               model_name=loaded.name, hw=target, force=force, measure=not no_measure,
                               threads=threads, processes=processes, repeats=repeats)
        # the fallback's and onnxslim's notes, unsupported ops; not torch's deprecation notices; each once
        for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, ExportFallbackWarning)
                                     or not issubclass(w.category, (DeprecationWarning, FutureWarning))):
            note(f"warning: {message}")
        t = Table(title=escape(f"{loaded.name} deployed to {out}"))
        for col in ("file", "size", "sha256"):
            t.add_column(col, justify="right" if col == "size" else "left")
        for name, f in man["files"].items():
            t.add_row(escape(name), si(f["bytes"], "B"), f["sha256"][:16])
        t.add_row("manifest.json", "", "")
        console.print(t)
        ex, sl = man["export"], man["slim"]
        lines = [f"{man['precision']}: {man['deploy_file']} on {runtime} {man['runtime_version'].split('-')[0]}"]
        if ex.get("exporter"):
            lines.append(f"exporter: {ex['exporter']} (opset {ex['opset']})"
                         + (f"; fallback: {ex['fallback']}" if ex.get("fallback") else ""))
        if sl:
            lines.append(f"onnxslim {sl['version']}: {sl['nodes_before']} -> {sl['nodes_after']} nodes"
                         + (f" ({sl['note']})" if sl.get("note") else ""))
        chk = man["checks"][man["deploy_file"]]
        lines.append(f"max |diff| {man['max_abs_diff']:.3g}: {man['deploy_file']} in {chk['runtime']} vs "
                     f"{chk['against']} on {man['check_inputs']}")
        q = man.get("quantization")
        if q:
            lines.append(f"quantized by {q['by']}; calibration: {q['calibration']}")
        m, p = man.get("measurement"), man.get("predicted")
        if m:
            lines.append(f"measured: {seconds(m['median_s'])} median ({m['protocol']}; spread {m['spread']:.1%})")
        if p:
            ratio = f"; measured / predicted {m['measured_over_predicted']:.3g}" \
                if m and "measured_over_predicted" in m else ""
            where = "" if p["hw"] == "host" or not m else f" (the roofline of {p['hw']}; the measurement is this CPU's)"
            lines.append(f"predicted ({p['source']}, {p['hw']}, {p['precision']}, fused): "
                         f"{seconds(p['latency_s'])}{ratio}{where}")
            lines.extend(f"  note: {n}" for n in p["notes"])
        for line in lines:
            console.print(line, highlight=False, markup=False)
        for w in (m or {}).get("warnings", []):
            note(f"warning: {w}")


