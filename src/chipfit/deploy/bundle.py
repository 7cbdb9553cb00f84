"""The deploy folder: a network exported, checked, converted for its runtime and measured, with a manifest that says
how (``chipfit deploy``).

:func:`deploy_model` writes into one folder:

    model.onnx        the float network (:func:`chipfit.deploy.onnx.export_float_info`: the torch.export-based
                      exporter, onnxslim, checked against PyTorch in ONNX Runtime); for an ONNX file given as the
                      model, that file unchanged
    model_int8.onnx   with ``quantize="int8"``: ONNX Runtime's static quantization of ``model.onnx`` (QDQ, uint8
                      activations, int8 weights, MinMax ranges from the calibration inputs); for a network that
                      ``chipfit compress`` already quantized, its own QDQ export instead (and no ``model.onnx``: the
                      fake-quant layers are the network). QDQ files are not slimmed: constant folding would fold the
                      weights' Q/DQ pairs into float constants.
    model.xml, .bin   with ``runtime="openvino"``: the file above converted by OpenVINO, float32 weights
    measurement.json  with ``measure=True``: :func:`chipfit.deploy.measure.measure` of the file the runtime runs,
                      every raw sample included
    manifest.json     what was done: input shape, precision, every file with its size and sha256, runtime and its
                      version, exporter, onnxslim's version and node counts, each file's check against PyTorch
                      (``checks``; ``max_abs_diff`` of the file the runtime runs), the calibration, the measured and
                      (with ``hw``) the roofline-predicted latency, CPU, threads, chipfit's version and the date.

The check inputs are the data's first 16 test images when a data set is given, else 16 standard normal images
(seed 0). Without data, calibration uses random standard normal images too, and the manifest says so: ranges from
noise need not fit real images, so the int8 file's accuracy is unknown until it is evaluated on data.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from chipfit.compress.quant.modules import QuantLayer
from chipfit.data.datasets import DataBundle
from chipfit.deploy.onnx import SAMPLE_IMAGES, export_float_info, onnx_format, ort_logits, tolerance
from chipfit.deploy.qdq import export_qdq, ort_quantize_static, verify_qdq
from chipfit.hw.calibrate import cpu_name

RUNTIMES = ("ort", "openvino")
QUANTIZE = ("int8",)
CALIB_IMAGES = 64  # calibration inputs for ONNX Runtime's static quantization
FLOAT_FILE, INT8_FILE, XML_FILE, BIN_FILE = "model.onnx", "model_int8.onnx", "model.xml", "model.bin"
MANIFEST, MEASUREMENT = "manifest.json", "measurement.json"
WRITES = (FLOAT_FILE, INT8_FILE, XML_FILE, BIN_FILE, MANIFEST, MEASUREMENT)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chipfit")
    except PackageNotFoundError:
        return "unknown"


def _runtime_version(runtime: str) -> str:
    if runtime == "openvino":
        from chipfit.deploy.openvino import openvino_version

        return openvino_version()
    import onnxruntime

    return onnxruntime.__version__


def _prepare(out: Path, force: bool) -> None:
    """Refuse a folder that holds files unless ``force``; with it, remove what an earlier deploy wrote there (so that
    no stale file sits beside the new ones), leaving everything else."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder: choose another --out")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not force:
        raise ValueError(f"{out} is not empty ({', '.join(held[:4])}{' and more' if len(held) > 4 else ''}); pass "
                         "--force to overwrite, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    for name in WRITES:
        if (out / name).is_file():
            (out / name).unlink()


def _images(source: torch.Tensor | Sequence[torch.Tensor], shape: tuple[int, ...], what: str) -> torch.Tensor:
    x = source if isinstance(source, torch.Tensor) else torch.cat([torch.as_tensor(t) for t in source])
    if x.ndim != len(shape) or tuple(x.shape[1:]) != shape[1:]:
        want = ", ".join(map(str, shape[1:]))
        raise ValueError(f"{what} images have shape {tuple(x.shape)}; the network takes (N, {want})")
    return x.float()


def _quant_precision(module: nn.Module) -> str:
    """The precision of a chipfit-quantized network (``int8``, or ``wXaY`` where its layers are not all 8-bit)."""
    bits = {m.weight_bits() for m in module.modules() if isinstance(m, QuantLayer)}
    if bits == {(8, 8)}:
        return "int8"
    w = min(b[0] for b in bits)
    acts = [b[1] for b in bits if b[1]]
    return f"w{w}a{min(acts)}" if acts else f"w{w}a32"


def _predict(target: nn.Module | Path, shape: tuple[int, ...], hw: str, precision: str, name: str) -> dict[str, Any]:
    """The roofline estimate of the network on ``hw`` (fused), at ``precision`` or, where the chip lacks it, at its
    fastest dtype (said in ``notes``)."""
    from chipfit.cost import Precision, count
    from chipfit.hw import load_chip, roofline

    chip = load_chip(hw)
    notes = []
    if Precision.parse(precision).compute not in chip.peak_ops_per_s:
        notes.append(f"{chip.name} has no {precision} arithmetic: estimated at {chip.best_dtype()}")
        precision = chip.best_dtype()
    prof = count(target, shape, precision, fused=True, name=name)
    est = roofline.estimate(prof, chip, fused=True)
    if prof.unsupported:
        notes.append(f"ops without a cost handler, not counted: {', '.join(sorted(prof.unsupported))}")
    return {"source": est.source, "hw": chip.name, "precision": precision, "fused": True,
            "latency_s": est.latency_s, "energy_j": est.energy_j, "notes": notes + list(est.notes)}


def _quantize(float_path: Path, out_path: Path, batches: list[torch.Tensor]) -> tuple[Path, str]:
    """ONNX Runtime's static quantization of ``float_path``, after its recommended pre-processing (shape inference and
    graph optimisation) where that succeeds; (the file, what pre-processing was done)."""
    import tempfile

    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="chipfit-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(float_path), str(pre))
            prep = "onnxruntime quant_pre_process (shape inference, graph optimisation)"
        except Exception as e:  # quantizing the file as it is still works, with ranges on unoptimised tensors
            pre = float_path
            first = (str(e).strip().splitlines() or ["(no message)"])[0][:200]
            prep = f"none: onnxruntime quant_pre_process failed ({type(e).__name__}: {first})"
        return ort_quantize_static(pre, out_path, batches), prep


def _check(label: str, got: np.ndarray, ref: np.ndarray, against: str, runtime: str) -> dict[str, Any]:
    d = np.abs(got - ref)
    return {"runtime": runtime, "against": against, "max_abs_diff": float(d.max()),
            "median_abs_diff": float(np.median(d)), "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
            "file": label}


def deploy_model(module: nn.Module | str | Path, out_dir: str | Path, *, input_shape: Sequence[int] | None,
                 runtime: str = "ort", quantize: str | None = None,
                 calib: torch.Tensor | Sequence[torch.Tensor] | DataBundle | None = None,
                 calib_images: int = CALIB_IMAGES, model_name: str = "", hw: str | None = None, force: bool = False,
                 measure: bool = True, threads: int = 1, processes: int = 3, repeats: int = 30) -> dict[str, Any]:
    """Export, check, convert and measure a network into ``out_dir`` (the files of the module docstring).

    Args:
        module: a network (float, or quantized by :func:`chipfit.compress.compress`), or an ``.onnx`` file (taken as
            it is: the checks compare with ONNX Runtime on it).
        out_dir: the deploy folder; one that holds files is refused unless ``force``.
        input_shape: the one input, e.g. (1, 3, 32, 32) (batch fixed in the file); for an ONNX file, default its own.
        runtime: ``ort`` (ONNX Runtime) or ``openvino`` (adds ``model.xml``/``.bin``).
        quantize: ``None`` or ``int8`` (the QDQ file; a network chipfit already quantized is exported as it is).
        calib: calibration and check images (normalised, (N, C, H, W) or a list of such batches), or a
            :class:`~chipfit.data.DataBundle` (its first ``calib_images`` training images calibrate, its first 16
            test images check); default random standard normal images, which the manifest says.
        calib_images: how many images calibrate without ``calib`` (or from a data set).
        model_name: the network's label in the manifest (default its class or file name).
        hw: a target (chip name, YAML file, SCALE-Sim ``.cfg``): its roofline estimate goes beside the measurement.
        force: write into a folder that holds files (the files an earlier deploy wrote there are replaced).
        measure: time the deployed file (:func:`chipfit.deploy.measure.measure`) into ``measurement.json``.
        threads, processes, repeats: the measurement's intra-op threads, fresh processes and timed runs each.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).

    Raises:
        ValueError: a bad option, a folder that holds files, OpenVINO not installed, an export that fails or does
            not match PyTorch, a target that does not load.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"quantize must be {' or '.join(QUANTIZE)} (or none), not {quantize!r}")
    for label, value in (("threads", threads), ("processes", processes), ("repeats", repeats),
                         ("calib_images", calib_images)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    onnx_in = None if isinstance(module, nn.Module) else Path(module)
    if onnx_in is not None:
        if onnx_in.suffix.lower() != ".onnx" or not onnx_in.is_file():
            raise ValueError(f"{onnx_in}: give a network (nn.Module) or an existing .onnx file")
        if input_shape is None:
            input_shape = _onnx_shape(onnx_in)
    if input_shape is None:
        raise ValueError("give input_shape, e.g. (1, 3, 32, 32)")
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"input_shape must be positive integers such as (1, 3, 32, 32), got {input_shape!r}")
    out = Path(out_dir)
    runtime_version = _runtime_version(runtime)  # fails first where OpenVINO is missing
    name = model_name or (onnx_in.stem if onnx_in is not None else type(module).__name__)
    fmt = "float" if onnx_in is not None else onnx_format(module)  # type: ignore[arg-type]
    own_qdq = fmt == "QDQ"
    precision = "int8" if (quantize or own_qdq) else "fp32"
    target = onnx_in if onnx_in is not None else module
    predicted = _predict(target, shape, hw, _quant_precision(module) if own_qdq else precision, name) \
        if hw is not None else None  # type: ignore[arg-type]
    _prepare(out, force)

    # check and calibration inputs
    data = calib if isinstance(calib, DataBundle) else None
    gen = torch.Generator().manual_seed(0)
    if data is not None:
        sample = _images(data.normalise(data.test.images[:SAMPLE_IMAGES]), shape, "the data's test")
        sample_note = f"the first {len(sample)} test images of {data.name}"
    else:
        sample = torch.randn(SAMPLE_IMAGES, *shape[1:], generator=gen)
        sample_note = f"{SAMPLE_IMAGES} random standard normal images (seed 0)"
    if onnx_in is None:
        with torch.no_grad():
            ref = module.eval()(sample).float().numpy()  # type: ignore[union-attr]
        against = "PyTorch (fake-quant)" if own_qdq else "PyTorch"
    else:
        ref = ort_logits(str(onnx_in), sample)
        against = f"ONNX Runtime on {onnx_in.name}"

    manifest: dict[str, Any] = {"model": name, "input_shape": list(shape), "precision": precision, "format": fmt,
                                "runtime": runtime, "runtime_version": runtime_version}
    checks: dict[str, dict[str, Any]] = {}
    export: dict[str, Any] = {}
    slim: dict[str, Any] | None = None
    quant: dict[str, Any] | None = None
    if own_qdq:
        deployed = export_qdq(module, out / INT8_FILE, shape)  # type: ignore[arg-type]
        v = verify_qdq(module, deployed, sample)  # type: ignore[arg-type]
        export = {"exporter": "torchscript", "opset": 17,
                  "fallback": "a chipfit-quantized network: its fake-quant layers have data-dependent control flow "
                              "that torch.export cannot trace (see chipfit.deploy.onnx)"}
        checks[INT8_FILE] = {"runtime": "onnxruntime", "against": against, "file": INT8_FILE,
                             **v["optimized"], "reference_session": v["reference"], "logit_step": v["logit_step"]}
        quant = {"by": f"chipfit compress ({_quant_precision(module)} fake quantization, exported as int8 QDQ)",
                 "calibration": "done by chipfit compress"}
    else:
        if onnx_in is None:
            info = export_float_info(module, out / FLOAT_FILE, shape, sample=sample)  # type: ignore[arg-type]
            export = {k: info[k] for k in ("exporter", "opset", "fallback", "export_s")}
            slim = info["slim"]
            checks[FLOAT_FILE] = {"runtime": "onnxruntime", "against": against, "file": FLOAT_FILE,
                                  "max_abs_diff": info["max_abs_diff"], "logit_scale": info["logit_scale"],
                                  "tolerance": info["tolerance"]}
        else:
            shutil.copyfile(onnx_in, out / FLOAT_FILE)
            export = {"exporter": None, "opset": None, "fallback": None, "note": f"the given file {onnx_in}, unchanged"}
            checks[FLOAT_FILE] = _check(FLOAT_FILE, ort_logits(str(out / FLOAT_FILE), sample), ref, against,
                                        "onnxruntime")
        deployed = out / FLOAT_FILE
        if quantize:
            if data is not None:
                images = _images(data.normalise(data.train.images[:calib_images]), shape, "the data's training")
                calib_note = f"the first {len(images)} training images of {data.name}"
            elif calib is not None:
                images = _images(calib, shape, "calibration")  # type: ignore[arg-type]
                calib_note = f"{len(images)} given images"
            else:
                images = torch.randn(calib_images, *shape[1:], generator=torch.Generator().manual_seed(1))
                calib_note = (f"{calib_images} random standard normal images (seed 1), not data: activation ranges "
                              "from noise need not fit real images; evaluate the int8 file on data before trusting "
                              "its accuracy")
            batches = [images[i:i + shape[0]] for i in range(0, len(images) - shape[0] + 1, shape[0])]
            deployed, prep = _quantize(out / FLOAT_FILE, out / INT8_FILE, batches)
            checks[INT8_FILE] = _check(INT8_FILE, ort_logits(str(deployed), sample), ref, against, "onnxruntime")
            quant = {"by": "onnxruntime quantize_static (QDQ, uint8 activations, int8 weights, per-tensor, MinMax)",
                     "calibration": calib_note, "random_calibration": data is None and calib is None,
                     "calibration_images": len(images), "pre_processing": prep}
    manifest["deploy_file"] = deployed.name
    ov_info = None
    if runtime == "openvino":
        from chipfit.deploy.openvino import openvino_logits, to_openvino

        xml = to_openvino(deployed, out)
        checks[XML_FILE] = _check(XML_FILE, openvino_logits(xml, sample), ref, against, "openvino")
        ov_info = {"converted_from": deployed.name, "weights": "fp32 (save_model without compression to fp16)",
                   "inference_precision": "f32 for float layers"}
        if precision == "fp32":
            limit = tolerance(float(np.abs(ref).max()))
            checks[XML_FILE]["tolerance"] = limit
            if checks[XML_FILE]["max_abs_diff"] > limit:
                raise ValueError(f"OpenVINO's conversion of {deployed.name} differs from {against} by "
                                 f"{checks[XML_FILE]['max_abs_diff']:.3g}, beyond the tolerance {limit:.3g}")
        deployed = xml
        manifest["deploy_file"] = XML_FILE
    manifest.update({"export": export, "slim": slim, "onnxslim_version": slim["version"] if slim else None,
                     "max_abs_diff": checks[manifest["deploy_file"]]["max_abs_diff"], "checks": checks,
                     "check_inputs": sample_note, "quantization": quant, "openvino": ov_info, "hw": hw,
                     "predicted": predicted, "cpu": cpu_name(), "threads": threads, "chipfit_version": _version(),
                     "torch_version": torch.__version__,
                     "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "measurement": None})
    if measure:
        from chipfit.deploy.measure import measure as run_measure

        m = run_measure(deployed, runtime=runtime, input_shape=shape, threads=threads, processes=processes,
                        repeats=repeats)
        (out / MEASUREMENT).write_text(m.to_json())
        manifest["measurement"] = {"file": MEASUREMENT, "median_s": m.median_s, "spread": m.spread, "sigma": m.sigma,
                                   "process_medians_s": m.process_medians_s, "protocol": m.protocol,
                                   "warnings": list(m.warnings)}
        if predicted is not None and predicted["latency_s"] > 0:
            manifest["measurement"]["measured_over_predicted"] = m.median_s / predicted["latency_s"]
    files = [p for p in (out / n for n in (FLOAT_FILE, INT8_FILE, XML_FILE, BIN_FILE, MEASUREMENT)) if p.is_file()]
    manifest["files"] = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def _onnx_shape(path: Path) -> tuple[int, ...]:
    """The static shape of the file's one input; ValueError where it has dynamic dimensions or several inputs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"{path.name} has {len(inputs)} inputs; chipfit deploy takes networks with one")
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inputs[0].type.tensor_type.shape.dim]
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"{path.name}'s input has dynamic dimensions: give the input shape (--input-shape 1x3x32x32)")
    return tuple(dims)
