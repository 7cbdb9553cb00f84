"""``compress``: the one verb. Prune (+ fine-tune, + distil), fold, quantize (+ calibrate, + QAT), then measure.

Order and why: pruning and its fine-tuning (with distillation) come first, with BatchNorm still in place: it
re-normalises the thinner layers and a network trains far better with it (after channel pruning its running
statistics are re-estimated on the calibration images before fine-tuning). Then BatchNorm is folded (a deployed
network has none, and quantizing folded weights is what a chip runs). Quantization comes last, so that its ranges
see the final weights: calibrated on training images, optionally fine-tuned through the training engine (QAT,
straight-through estimator) on the folded network.

What is measured, for the network before (``baseline``) and after (``compressed``), in ``report.json``:
    accuracy      top-1 on the data set's test split (a fraction), None without data
    size_bytes    storage of the parameters: quantized weights at their bit width, biases as int32 (4 B), everything
                  else at 4 B (2 B for fp16); a tensor that pruning left sparse is stored as its non-zero values plus a
                  4-bit relative index each (Deep Compression's format, Han et al. 2016) when that is smaller
    macs          multiply-adds executed on ``arch``: the physical network's, less the zero weights when the
                  architecture skips them (``dense_macs``: all of them)
    latency_s, energy_j
                  ``chipfit simulate`` of the physical network on ``arch`` (default ``edge-npu``) at the network's bit
                  widths; float runs as 32-bit data on the array (several passes on an 8-bit array); every layer
                  by itself, each map written to and read back from DRAM
    latency_fused_s, energy_fused_j
                  the same with each conv/linear and its BatchNorm, activation and element-wise followers run as one
                  layer (``simulate(fuse=True)``), as a deployment compiler runs them: what a chip would see
    ort_latency_s measured: median of ONNX Runtime CPU runs of the exported file, batch 1 (this CPU has no fast int8
                  path on every machine: int8 need not be faster here; the chip model is where low precision pays)
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from chipfit.compress.config import CompressConfig
from chipfit.train.engine import TrainConfig, TrainHooks, evaluate, fit

INDEX_BITS = 4


@dataclass
class CompressResult:
    """The compressed network and what was measured; ``report`` is what ``report.json`` holds."""

    model: nn.Module
    config: CompressConfig
    baseline: dict[str, Any]
    compressed: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    onnx: dict[str, Any] | None = None
    out: Path | None = None

    @property
    def report(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "baseline": self.baseline, "compressed": self.compressed,
                "steps": self.steps, "onnx": self.onnx}


def compress(model: nn.Module, config: CompressConfig, data: Any = None, *, out: str | Path | None = None,
             resume: bool = False, progress: bool = True, input_shape: tuple[int, ...] | None = None,
             model_name: str | None = None) -> CompressResult:
    """Compress ``model`` as ``config`` says and measure it before and after.

    Args:
        model: a float network (changed in place and returned in the result).
        config: what to do (:class:`CompressConfig`).
        data: a :class:`~chipfit.data.DataBundle`; needed for accuracy, calibration, fine-tuning and QAT.
        out: folder for ``compressed.pt``, ``model.onnx``, ``report.json`` and the fine-tuning runs.
        resume: continue interrupted fine-tuning or QAT runs in ``out``.
        input_shape: one input, e.g. (1, 1, 28, 28); defaults to the data's.
        model_name: registry name of ``model`` (kept in the checkpoint so ``chipfit eval`` can rebuild it).
    """
    from chipfit.compress.fold import fold_bn

    needs_data = config.quant is not None and not config.quant.fp16 or config.prune or config.distill
    if data is None and needs_data:
        raise ValueError("calibration, fine-tuning and distillation need data (data=..., --data)")
    if input_shape is None:
        if data is None:
            raise ValueError("give input_shape (e.g. (1, 3, 224, 224)) or data")
        input_shape = data.input_shape(1)
    out = Path(out) if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model.eval()
    baseline = measure(model, config, data, input_shape, quant=None)
    if out:
        with tempfile.TemporaryDirectory() as tmp:
            baseline["ort_latency_s"] = ort_latency(_export_float(model, Path(tmp) / "float.onnx", input_shape),
                                                    input_shape)
    steps: list[dict[str, Any]] = [{"step": "baseline", "accuracy": baseline["accuracy"]}]
    plan = None

    hooks = TrainHooks()
    if config.prune is not None:
        from chipfit.compress.prune import recalibrate_bn

        model, plan, hooks, info = _prune(model, config, data, input_shape)
        if plan is not None and recalibrate_bn(model, calibration_batches(data, config)):
            info["batchnorm_recalibrated"] = True
        steps.append({"step": "prune", **info, "accuracy": _acc(model, data)})
    if config.distill is not None:
        from chipfit.compress.distill import distill_hooks, load_teacher

        teacher = load_teacher(config.distill.teacher)
        dh = distill_hooks(model, teacher, config.distill, torch.zeros(input_shape))
        hooks = TrainHooks(extra_loss=dh.extra_loss, after_step=hooks.after_step, modules=dh.modules,
                           close=dh.close)
    if (config.prune is not None or config.distill is not None) and config.finetune_epochs:
        try:
            _train(model, data, config, config.finetune_epochs, out / "finetune" if out else None, resume,
                   progress, hooks, model_name)
        finally:
            if hooks.close is not None:  # the distillation recorders come off the student and the teacher
                hooks.close()
        if hooks.after_step is not None:  # the pruning schedule's end: weights at the final sparsity
            hooks.after_step(1, 1)
        steps.append({"step": "finetune", "epochs": config.finetune_epochs, "accuracy": _acc(model, data)})
    elif hooks.after_step is not None:  # no fine-tuning: prune at once
        hooks.after_step(1, 1)
        steps.append({"step": "prune at once", "accuracy": _acc(model, data)})

    if config.fold:
        n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        fold_bn(model)
        left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        steps.append({"step": "fold", "batchnorms_folded": n_bn - left, "batchnorms_left": left,
                      "accuracy": _acc(model, data)})

    float_model = copy.deepcopy(model)  # the physical network the chip runs: costs come from this one
    if config.quant is not None:
        from chipfit.compress.quant import calibrate, quantize

        quantize(model, config.quant)
        if not config.quant.fp16:
            calibrate(model, calibration_batches(data, config))
            steps.append({"step": "calibrate", "images": config.calib_images, "method": config.quant.calibration,
                          "accuracy": _acc(model, data)})
        if config.qat_epochs:
            _train(model, data, config, config.qat_epochs, out / "qat" if out else None, resume, progress,
                   TrainHooks(), model_name)
            steps.append({"step": "qat", "epochs": config.qat_epochs, "accuracy": _acc(model, data)})
    model.eval()
    compressed = measure(model, config, data, input_shape, quant=config.quant, float_model=float_model)
    result = CompressResult(model, config, baseline, compressed, steps, plan, out=out)
    if out:
        result.onnx = _export(model, float_model, config, out / "model.onnx", input_shape, data)
        result.compressed["ort_latency_s"] = result.onnx.get("ort_latency_s")
        save_compressed(out / "compressed.pt", model, config, plan, model_name, data)
        (out / "report.json").write_text(json.dumps(result.report, indent=2))
    return result


# --- pruning and training ---------------------------------------------------------------------------------------


SENSITIVITY_IMAGES = 256  # calibration images on which each group's cut is measured


def _prune(model: nn.Module, config: CompressConfig, data: Any, input_shape) -> tuple:
    from chipfit.compress import prune as P

    pc = config.prune
    if pc.structured:
        before = sum(p.numel() for p in model.parameters())
        batches = None
        if pc.allocation == "sensitivity":
            if data is None:
                raise ValueError("sensitivity allocation measures the network on calibration images: pass data")
            batches = list(torch.cat(calibration_batches(data, config))[:SENSITIVITY_IMAGES].split(config.batch_size))
        model, plan = P.prune_channels(model, pc.amount, torch.zeros(input_shape), groups=pc.groups,
                                       allocation=pc.allocation, batches=batches)
        after = sum(p.numel() for p in model.parameters())
        return model, plan, TrainHooks(), {"structured": True, "amount": pc.amount, "groups": pc.groups,
                                           "allocation": pc.allocation, "params_before": before,
                                           "params_after": after}
    agp = P.AGPSchedule(model, pc.amount, fraction=pc.agp_fraction if config.finetune_epochs else 0.0,
                        scope=pc.scope)
    return model, None, TrainHooks(after_step=agp.step), {"structured": False, "amount": pc.amount,
                                                          "scope": pc.scope}


def _train(model: nn.Module, data: Any, config: CompressConfig, epochs: int, out: Path | None, resume: bool,
           progress: bool, hooks: TrainHooks, model_name: str | None) -> None:
    cfg = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr, warmup_epochs=min(0.1, epochs),
                      seed=config.seed, out=str(out) if out else None,
                      resume=bool(resume and out and (out / "last.pt").is_file()), progress=progress,
                      model_name=model_name, max_steps_per_epoch=config.max_steps_per_epoch)
    r = fit(model, data, cfg, hooks=hooks)
    if r.interrupted:
        raise KeyboardInterrupt(f"interrupted: continue with --resume (checkpoint in {out})")


def calibration_batches(data: Any, config: CompressConfig) -> list[torch.Tensor]:
    """``config.calib_images`` training images, drawn with the config's seed, normalised, not augmented."""
    n = min(config.calib_images, len(data.train))
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(config.seed))[:n]
    x = data.normalise(data.train.images[idx])
    return list(x.split(config.batch_size))


def _acc(model: nn.Module, data: Any) -> float | None:
    if data is None:
        return None
    was = model.training
    model.eval()
    try:
        return float(evaluate(model, data, "test")["accuracy"])
    finally:
        model.train(was)


# --- measuring --------------------------------------------------------------------------------------------------


def measure(model: nn.Module, config: CompressConfig, data: Any, input_shape, quant=None,
            float_model: nn.Module | None = None) -> dict[str, Any]:
    """Accuracy, storage, MACs and simulated latency/energy (see the module docstring)."""
    from chipfit.api import profile
    from chipfit.hw.sim import load_arch, simulate

    phys = float_model if float_model is not None else model
    prof = profile(phys, input_shape=tuple(input_shape))
    zeros, weights = _weight_sparsity(phys)
    density = 1 - zeros / weights if weights else 1.0
    bits, wbits = 32, 32
    layer_bits: dict[str, int] = {}
    if quant is not None:
        bits, wbits = (16, 16) if quant.fp16 else (quant.act_bits or 32, quant.weight_bits)
        from chipfit.compress.quant import quant_bits

        # mixed precision (keep_8bit): the layers that differ from the network's weight width
        layer_bits = {n: w for n, (w, _) in quant_bits(model).items() if w != wbits}
    arch = load_arch(config.arch)
    sparsity = None
    note = ""
    if density < 0.99:
        if "unstructured" in arch.sparsity:
            sparsity = round(1 - density, 4)
        else:
            note = f"{arch.name} does not skip unstructured zeros: simulated dense"
    sim_bits = bits if bits in (4, 8, 16, 32) else 8
    kw = {"bits": sim_bits, "weight_bits": wbits, "sparsity": sparsity, "layer_weight_bits": layer_bits}
    tot = simulate(prof, arch, **kw).total
    fused = simulate(prof, arch, **kw, fuse=True).total
    res = {"accuracy": _acc(model, data), "size_bytes": size_bytes(phys, quant, layer_bits),
           "params": prof.total.params,
           "dense_macs": prof.total.macs, "macs": tot["macs"] if sparsity else prof.total.macs,
           "weight_sparsity": 1 - density, "latency_s": tot["time_s"], "energy_j": tot["energy_j"],
           "latency_fused_s": fused["time_s"], "energy_fused_j": fused["energy_j"],
           "arch": arch.name, "bits": bits, "weight_bits": wbits}
    if note:
        res["note"] = note
    return res


def _weighted(model: nn.Module) -> list[tuple[str, nn.Module, str, torch.Tensor]]:
    """(module name, module, parameter name, tensor) of every conv/linear-like weight (2+ dimensions)."""
    out = []
    for mn, m in model.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            if p.ndim >= 2:
                out.append((mn, m, pn, p))
    return out


def _weight_sparsity(model: nn.Module) -> tuple[int, int]:
    zeros = total = 0
    for _, _, _, p in _weighted(model):
        zeros += int((p == 0).sum())
        total += p.numel()
    return zeros, total


def size_bytes(model: nn.Module, quant=None, layer_bits: dict[str, int] | None = None) -> int:
    """Parameter storage in bytes (the convention in the module docstring); ``layer_bits`` gives single layers (by
    module name) another weight width."""
    wbits = 32 if quant is None else (16 if quant.fp16 else quant.weight_bits)
    other = 2 if quant is not None and quant.fp16 else 4
    weights = {id(p): (layer_bits or {}).get(mn, wbits) for mn, _, _, p in _weighted(model)}
    total = 0.0
    for p in model.parameters():
        if id(p) in weights:
            wbits = weights[id(p)]
            dense = p.numel() * wbits / 8
            nnz = int((p != 0).sum())
            total += min(dense, nnz * (wbits + INDEX_BITS) / 8)
        else:
            total += p.numel() * other
    return int(math.ceil(total))


# --- export and files -------------------------------------------------------------------------------------------


def _export_float(model: nn.Module, path: Path, input_shape) -> Path:
    model.eval()
    torch.onnx.export(model, (torch.zeros(input_shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"])
    return path


def _export(model: nn.Module, float_model: nn.Module, config: CompressConfig, path: Path, input_shape,
            data: Any) -> dict[str, Any]:
    """``model.onnx``: QDQ for integer quantization, float otherwise; checked against the PyTorch model in ORT."""
    import numpy as np
    import onnxruntime as ort

    x = (data.normalise(data.test.images[:16]) if data is not None else torch.randn(16, *input_shape[1:]))
    info: dict[str, Any] = {"file": str(path)}
    if config.quant is not None and not config.quant.fp16:
        from chipfit.compress.quant import export_qdq, verify_qdq

        export_qdq(model, path, input_shape)
        info.update(verify_qdq(model, path, x))
        info["format"] = "QDQ"
    else:
        _export_float(model, path, input_shape)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        with torch.no_grad():
            ref = model(x).float().numpy()
        got = np.concatenate([sess.run(None, {name: x[i:i + 1].numpy()})[0] for i in range(len(x))])
        info.update({"format": "fp16-emulated float" if config.quant else "float",
                     "max_abs_diff": float(np.abs(got - ref).max())})
    info["ort_latency_s"] = ort_latency(path, input_shape)
    return info


def ort_latency(path: Path, input_shape, runs: int = 50) -> float:
    """Median seconds of one ONNX Runtime CPU run (one thread per core available, after 5 warm-up runs)."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    for _ in range(5):
        sess.run(None, {name: x})
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def save_compressed(path: Path, model: nn.Module, config: CompressConfig, plan: dict | None, model_name: str | None,
                    data: Any) -> Path:
    """A weights-only checkpoint that :func:`load_compressed` (and ``chipfit eval``) rebuilds."""
    from chipfit.train.checkpoint import model_spec, save_checkpoint

    state = {"model_spec": model_spec(model, model_name), "model": model.state_dict(),
             "compress_config": json.dumps(config.to_dict()), "prune_plan": json.dumps(plan)}
    if data is not None:
        state["classes"] = json.dumps(data.classes)
        state["norm"] = json.dumps({"mean": data.mean, "std": data.std})
    return save_checkpoint(path, state)


def rebuild_compressed(model: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Apply a compressed checkpoint's transforms to a freshly built float ``model`` and load its weights."""
    from chipfit.compress.fold import fold_bn

    cfg = CompressConfig.from_dict(json.loads(state["compress_config"]))
    plan = json.loads(state.get("prune_plan") or "null")
    if plan:  # pruned before folding; a plan made on a folded network fits the unfolded one too (BN passes channels)
        from chipfit.compress.prune import apply_plan

        model = apply_plan(model, plan)
    if cfg.fold:
        fold_bn(model)
    if cfg.quant is not None:
        from chipfit.compress.quant import quantize

        quantize(model, cfg.quant)
    model.load_state_dict(state["model"])
    return model.eval()
