"""`chipfit train`, `chipfit eval`, `chipfit compress`: making a network learn, and making it small."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from chipfit.cli._common import (
    console,
    deprecated_arch,
    fail,
    user_errors,
)


def train(
    model: Annotated[str | None, typer.Argument(help="built-in name (chipfit models) or a ModelConfig JSON file")]
    = None,
    data: Annotated[str, typer.Option(help="fashion-mnist or a class-per-folder tree (train/<class>/*.png); for "
                                           "--task segment/detect: fmnist-scenes, trees, nuclei or a folder (image + "
                                           "mask folders, Pascal VOC, COCO JSON)")] = "",
    task: Annotated[str, typer.Option(help="classify, segment (mIoU) or detect (COCO mAP)")] = "classify",
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
        if task not in ("classify", "segment", "detect"):
            fail(f"--task {task!r}: classify, segment or detect")
        if not data or out is None:
            fail("give --data (fashion-mnist or a class-per-folder tree; fmnist-scenes for --task segment/detect) "
                 "and --out DIR")
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                          warmup_epochs=warmup_epochs, label_smoothing=label_smoothing, ema_decay=ema, seed=seed,
                          out=str(out), resume=resume, force=force)
        result, report = run_train(spec, data, cfg, crop_pad=crop_pad, task=task)
        if report is None:
            raise typer.Exit(130)
        if task != "classify":
            what = "mIoU" if task == "segment" else "mAP@0.5"
            more = (f", mAP {report['test']['map']:.4f}" if task == "detect" else
                    f", pixel accuracy {report['test']['pixel_accuracy']:.4f}")
            console.print(f"test {what} {report['test_score']:.4f}{more} ({report['model']}, {report['params']:,} "
                          f"params, {report['macs'] / 1e6:.2f} M MACs at {'x'.join(map(str, report['input_shape']))}, "
                          f"{report['train_seconds']:.0f} s); wrote {out}/report.json, {out}/predictions.png",
                          highlight=False, markup=False)
            return
        console.print(f"test accuracy {report['test_accuracy']:.4f} ({report['model']}, {report['params']:,} params, "
                      f"{report['macs'] / 1e6:.2f} M MACs, {report['train_seconds']:.0f} s); wrote {out}/report.json, "
                      f"{out}/confusion.png", highlight=False, markup=False)


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
        target = deprecated_arch(hw, arch) or "edge-npu"
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


