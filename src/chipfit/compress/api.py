"""``compress``: the one verb. Prune (+ fine-tune, + distil), fold, quantize (+ calibrate, + QAT), then measure.

Order and why: pruning and its fine-tuning (with distillation) come first, with BatchNorm still in place: it
re-normalises the thinner layers and a network trains far better with it (after channel pruning its running
statistics are re-estimated on the calibration images before fine-tuning). Then BatchNorm is folded (a deployed
network has none, and quantizing folded weights is what a chip runs). Quantization comes last, so that its ranges
see the final weights: calibrated on training images, optionally fine-tuned through the training engine (QAT,
straight-through estimator) on the folded network.

What is measured, before and after, is described in :mod:`chipfit.compress.measure`; ``--out`` receives
``compressed.pt`` (:mod:`chipfit.compress.checkpoint`) and ``report.json``. Exporting the result to ONNX and timing
it in ONNX Runtime is deployment's job (:func:`chipfit.deploy.export_compressed`), which fills ``onnx`` and the
``ort_latency_s`` figures and rewrites ``report.json``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from chipfit.compress.checkpoint import save_compressed
from chipfit.compress.config import CompressConfig
from chipfit.compress.measure import accuracy, measure
from chipfit.train.config import TrainConfig
from chipfit.train.engine import TrainHooks, fit

TEACHER_NEEDED = "distillation needs the teacher network: pass teacher=... (chipfit.load.load_model(path).module)"


@dataclass
class CompressResult:
    """The compressed network and what was measured; ``report`` is what ``report.json`` holds.

    ``onnx`` (the exported file and its check against PyTorch) and the ``ort_latency_s`` figures of ``baseline`` and
    ``compressed`` are filled by :func:`chipfit.deploy.export_compressed`; until then ``onnx`` is None.
    """

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
             model_name: str | None = None, teacher: nn.Module | None = None, force: bool = False,
             task: Any = None) -> CompressResult:
    """Compress ``model`` as ``config`` says and measure it before and after.

    Args:
        model: a float network (changed in place and returned in the result).
        config: what to do (:class:`CompressConfig`).
        data: a :class:`~chipfit.data.DataBundle`; needed for accuracy, calibration, fine-tuning and QAT.
        out: folder for ``compressed.pt``, ``report.json`` and the fine-tuning runs.
        resume: continue interrupted fine-tuning or QAT runs in ``out``.
        input_shape: one input, e.g. (1, 1, 28, 28); defaults to the data's.
        model_name: registry name of ``model`` (kept in the checkpoint so ``chipfit eval`` can rebuild it).
        teacher: the trained teacher network when ``config.distill`` is set (frozen and put in eval mode here).
        force: write into an ``out`` that already holds files, over them (without it, and without ``resume``, such
            a folder is refused: nothing is lost).
        task: what ``accuracy`` measures and fine-tuning trains (:class:`chipfit.train.task.Task`); default
            classification; a segmenter's or detector's (``chipfit.train.dense.make_task``) with dense data, when
            ``accuracy`` is its score (mIoU, mAP@0.5).
    """
    from chipfit.compress.fold import fold_bn

    needs_data = config.quant is not None and not config.quant.fp16 or config.prune or config.distill
    if data is None and needs_data:
        raise ValueError("calibration, fine-tuning and distillation need data (data=..., --data)")
    if config.distill is not None and teacher is None:
        raise ValueError(TEACHER_NEEDED)
    if input_shape is None:
        if data is None:
            raise ValueError("give input_shape (e.g. (1, 3, 224, 224)) or data")
        input_shape = data.input_shape(1)
    out = Path(out) if out else None
    if out:
        held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"--out {out} is a file, not a folder: choose another --out")
        if held and not resume and not force:
            raise FileExistsError(f"{out} already holds files ({', '.join(held[:4])}"
                                  f"{' and more' if len(held) > 4 else ''}): continue an interrupted compression with "
                                  "--resume, write over them with --force, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model.eval()
    baseline = measure(model, config, data, input_shape, quant=None, task=task)
    steps: list[dict[str, Any]] = [{"step": "baseline", "accuracy": baseline["accuracy"]}]
    plan = None

    hooks = TrainHooks()
    if config.prune is not None:
        from chipfit.compress.prune import recalibrate_bn

        model, plan, hooks, info = _prune(model, config, data, input_shape)
        if plan is not None and recalibrate_bn(model, calibration_batches(data, config)):
            info["batchnorm_recalibrated"] = True
        steps.append({"step": "prune", **info, "accuracy": accuracy(model, data, task)})
    if config.distill is not None:
        from chipfit.compress.distill import distill_hooks, freeze_teacher

        dh = distill_hooks(model, freeze_teacher(teacher), config.distill, torch.zeros(input_shape))
        hooks = TrainHooks(extra_loss=dh.extra_loss, after_step=hooks.after_step, modules=dh.modules,
                           close=dh.close)
    if (config.prune is not None or config.distill is not None) and config.finetune_epochs:
        try:
            _train(model, data, config, config.finetune_epochs, out / "finetune" if out else None, resume,
                   progress, hooks, model_name, force, task)
        finally:
            if hooks.close is not None:  # the distillation recorders come off the student and the teacher
                hooks.close()
        if hooks.after_step is not None:  # the pruning schedule's end: weights at the final sparsity
            hooks.after_step(1, 1)
        steps.append({"step": "finetune", "epochs": config.finetune_epochs, "accuracy": accuracy(model, data, task)})
    elif hooks.after_step is not None:  # no fine-tuning: prune at once
        hooks.after_step(1, 1)
        steps.append({"step": "prune at once", "accuracy": accuracy(model, data, task)})

    if config.fold:
        n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        fold_bn(model)
        left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        steps.append({"step": "fold", "batchnorms_folded": n_bn - left, "batchnorms_left": left,
                      "accuracy": accuracy(model, data, task)})

    float_model = copy.deepcopy(model)  # the physical network the chip runs: costs come from this one
    if config.quant is not None:
        from chipfit.compress.quant import calibrate, quantize

        quantize(model, config.quant)
        if not config.quant.fp16:
            calibrate(model, calibration_batches(data, config))
            steps.append({"step": "calibrate", "images": config.calib_images, "method": config.quant.calibration,
                          "accuracy": accuracy(model, data, task)})
        if config.qat_epochs:
            _train(model, data, config, config.qat_epochs, out / "qat" if out else None, resume, progress,
                   TrainHooks(), model_name, force, task)
            steps.append({"step": "qat", "epochs": config.qat_epochs, "accuracy": accuracy(model, data, task)})
    model.eval()
    compressed = measure(model, config, data, input_shape, quant=config.quant, float_model=float_model,
                         task=task)
    result = CompressResult(model, config, baseline, compressed, steps, plan, out=out)
    if out:
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
           progress: bool, hooks: TrainHooks, model_name: str | None, force: bool = False, task: Any = None) -> None:
    cont = bool(resume and out and (out / "last.pt").is_file())
    cfg = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr, warmup_epochs=min(0.1, epochs),
                      seed=config.seed, out=str(out) if out else None, resume=cont, progress=progress,
                      model_name=model_name, max_steps_per_epoch=config.max_steps_per_epoch,
                      force=not cont and (force or resume))
    r = fit(model, data, cfg, hooks=hooks, task=task)
    if r.interrupted:
        raise KeyboardInterrupt(f"interrupted: continue with --resume (checkpoint in {out})")


def calibration_batches(data: Any, config: CompressConfig) -> list[torch.Tensor]:
    """``config.calib_images`` training images, drawn with the config's seed, normalised, not augmented."""
    n = min(config.calib_images, len(data.train))
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(config.seed))[:n]
    x = data.normalise(data.train.images[idx])
    return list(x.split(config.batch_size))
