"""The public entry points that combine stages: ``chipfit.profile``, ``chipfit.simulate``, ``chipfit.api.train``,
``chipfit.api.search``.

Each takes a model spec (:mod:`chipfit.load`) and a target where it needs one (``hw``: a chip name, a YAML file or a
SCALE-Sim ``.cfg``), so that the stages below see modules, profiles and chips only. Kept at the top so that data
flows one way: models -> cost records -> hardware models -> reports.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from chipfit.cost import Precision, Profile, count
from chipfit.cost.guidelines import check
from chipfit.hw import Chip, load_chip
from chipfit.hw import roofline as _roofline
from chipfit.load import LoadedModel, checkpoint_path, load_model


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``1x3x224x224`` (or ``1,3,224,224``) -> (1, 3, 224, 224); ValueError with the expected form otherwise."""
    if not isinstance(text, str):
        try:
            shape = tuple(int(d) for d in text)
        except (TypeError, ValueError):
            raise ValueError(f"input shape {text!r} is not a sequence of integers such as (1, 3, 224, 224)") from None
    else:
        parts = text.lower().replace(",", "x").replace(" ", "").split("x")
        try:
            shape = tuple(int(p) for p in parts if p)
        except ValueError:
            raise ValueError(f"input shape {text!r} is not of the form 1x3x224x224") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"input shape {text!r}: every dimension must be a positive integer, e.g. 1x3x224x224")
    return shape


def _precision(precision: str | Precision | None, dtype: str | Precision | None, default: str) -> Precision:
    if dtype is not None:
        if precision is not None:
            raise ValueError("give precision=..., not both precision and dtype")
        warnings.warn("dtype=... is deprecated: use precision=... (the same values: fp32, int8, w4a8, ...)",
                      DeprecationWarning, stacklevel=3)
        precision = dtype
    return Precision.parse(precision or default)


def _counted(loaded: LoadedModel, input_shape: Sequence[int] | str | None, precision: Precision, fused: bool,
             mode: str = "auto") -> Profile:
    shape = parse_shape(input_shape) if input_shape is not None else loaded.input_shape
    if loaded.module is not None and shape is None:
        raise ValueError(f"give an input shape for {loaded.name} (e.g. 1x3x224x224)")
    return count(loaded.target, shape, precision, fused=fused, mode=mode, name=loaded.name)


def profile(model: str | nn.Module, input_shape: Sequence[int] | str | None = None, hw: str | Chip | None = None,
            precision: str | Precision | None = None, fused: bool = True, mode: str = "auto",
            dtype: str | Precision | None = None) -> Profile:
    """Profile a network: parameters, MACs, FLOPs, bytes, structure, fusion and guidelines, and, given a chip,
    roofline latency and energy (``profile.estimate``; both modes in ``profile.estimates``).

    Args:
        model: a model spec (:mod:`chipfit.load`): module, built-in name, ``module:factory``, ``.onnx``,
            ``ModelConfig`` JSON, checkpoint or run folder.
        input_shape: e.g. ``(1, 3, 224, 224)`` or ``"1x3x224x224"``; defaults to the model's own shape.
        hw: a chip name (``chipfit hw list``), a YAML file, a SCALE-Sim ``.cfg``, or a :class:`~chipfit.hw.Chip`.
        precision: ``fp32``, ``fp16``, ``int8``, ... or ``wXaY`` for separate weight and activation bits; default
            fp32, or the chip's fastest dtype on a chip without fp32 arithmetic (a note says so).
        fused: whether ``total`` and ``layers`` assume fused execution (both modes are always computed).
        mode: capture mode for PyTorch models: ``auto``, ``meta`` or ``real``.
        dtype: the old name of ``precision`` (deprecated).
    """
    chip = load_chip(hw) if hw is not None and not isinstance(hw, Chip) else hw
    notes = []
    if precision is None and dtype is None and chip is not None and "fp32" not in chip.peak_ops_per_s:
        precision = chip.best_dtype()  # the chip's own arithmetic, rather than an error for a default nobody chose
        notes.append(f"precision {precision}: {chip.name} has no fp32 arithmetic (give --precision to choose)")
    prec = _precision(precision, dtype, "fp32")
    if chip is not None:
        chip.peak(prec.compute)  # fail early, naming the dtypes the chip supports
    prof = _counted(load_model(model), input_shape, prec, fused, mode)
    prof.notes.extend(notes)
    if chip is not None:
        prof.estimates = {"unfused": _roofline.estimate(prof, chip, fused=False),
                          "fused": _roofline.estimate(prof, chip, fused=True)}
        prof.guidelines = check(prof, prof.estimates)
    return prof


def simulate(model: Any, hw: Any = None, *, input_shape: Sequence[int] | str | None = None, **options: Any) -> Any:
    """Simulate a network on a target with a systolic array (:func:`chipfit.hw.sim.simulate`).

    Args:
        model: a model spec (:mod:`chipfit.load`), a :class:`~chipfit.cost.Profile`, a SCALE-Sim topology ``.csv``
            or a list of simulator layers.
        hw: a chip with an ``array`` section (``chipfit hw list``), a YAML file, a SCALE-Sim ``.cfg``, or an Arch.
        input_shape: the input, for a model that does not define one.
        options: ``precision``, ``fused``, ``dataflow``, ``batch``, ``chips``, ``sparsity`` (and the deprecated
            spellings) as :func:`chipfit.hw.sim.simulate` takes them.
    """
    from chipfit.hw.sim import simulate as run
    from chipfit.hw.sim.engines import is_engine, simulate_engine

    if isinstance(model, (str, Path, nn.Module)) and not str(model).lower().endswith(".csv"):
        loaded = load_model(model)
        fused = options.get("fused", options.get("fuse"))
        model = _counted(loaded, input_shape, Precision.parse("fp32"), True if fused is None else fused)
    if is_engine(hw):
        from chipfit.hw.sim import layers_from_profile, read_topology

        bad = sorted(k for k, v in options.items() if v not in (None, 1, True) and k != "batch")
        if bad:
            raise ValueError(f"{hw} is not a systolic array: {', '.join(bad)} do not apply (it takes batch only)")
        if isinstance(model, Profile):
            model = layers_from_profile(model, True)
        elif isinstance(model, (str, Path)):
            model = read_topology(Path(model))
        return simulate_engine(model, hw, batch=options.get("batch") or 1)
    return run(model, hw, input_shape=input_shape, **options)


def explore(model: Any, hw_space: Any = "npu", *, input_shape: Sequence[int] | str | None = None,
            out: str | Path | None = None, place: Sequence[str] = ("edge-npu", "eyeriss-v1", "tpu-v1"),
            on_design: Any = None, **options: Any) -> dict[str, Any]:
    """The accelerator front of a fixed network (:func:`chipfit.hw.explore.explore`), with built-in chips placed
    on it (:func:`~chipfit.hw.explore.placement`, each evaluated at the space's node).

    Args:
        model: a model spec (:mod:`chipfit.load`), a :class:`~chipfit.cost.Profile` or a list of simulator layers.
        hw_space: an accelerator space (:func:`chipfit.hw.space.load_hw_space`).
        input_shape: the input, for a model that does not define one.
        out: a folder for ``designs.jsonl`` (the resumable log), ``explore.json`` and the plots; None: nothing
            written and nothing resumed.
        place: chips (with arrays) to score and place against the front.
        on_design: progress callback (design, scored so far).
        options: ``trials``, ``strategy``, ``seed``, ``budgets``, ``objectives``, ``precision``, ``batch``,
            ``sparsity`` as :func:`~chipfit.hw.explore.explore` takes them.

    Returns:
        The report (what ``explore.json`` holds): the space, every design, the front, the placed chips, figures.
    """
    import json

    from chipfit.hw.explore import evaluate, placement
    from chipfit.hw.explore import explore as run
    from chipfit.hw.sim import layers_from_profile, load_arch
    from chipfit.hw.space import load_hw_space

    space = load_hw_space(hw_space)
    name = "layers"
    if isinstance(model, Profile):
        layers, name = layers_from_profile(model, True), model.model_name
    elif isinstance(model, (list, tuple)):
        layers = list(model)
    else:
        loaded = load_model(model)
        prof = _counted(loaded, input_shape, Precision.parse("fp32"), True)
        layers, name = layers_from_profile(prof, True), loaded.name
    out_dir = Path(out) if out is not None else None
    ex = run(layers, space, log=out_dir / "designs.jsonl" if out_dir else None, on_design=on_design, **options)
    report = ex.to_dict() | {"model": name, "options": {k: (v.__dict__ if hasattr(v, "__dict__") else v)
                                                        for k, v in options.items()}}
    keep = {k: options[k] for k in ("precision", "batch", "sparsity", "budgets") if k in options}
    placed = []
    for chip in place:
        d = evaluate(layers, load_arch(chip), node_nm=space.node_nm, key=chip, **keep)
        placed.append({"chip": chip, "design": d.to_dict(), "placement": placement(d, ex.designs, ex.objectives)})
    report["placed"] = placed
    if out_dir is not None:
        from chipfit.report.explore import explore_plots

        report["plots"] = [str(p) for p in explore_plots(report, out_dir)]
        (out_dir / "explore.json").write_text(json.dumps(_no_inf(report), indent=2, allow_nan=False))
    return report


def _no_inf(x: Any) -> Any:
    """``x`` with infinite and NaN floats as None (JSON has no infinity: a design that fits no buffer has none)."""
    import math

    if isinstance(x, dict):
        return {k: _no_inf(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_inf(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


# --- compression ------------------------------------------------------------------------------------------------


def compress(model: str | nn.Module, config: Any, data: Any = None, *, out: str | Path | None = None,
             resume: bool = False, progress: bool = True, input_shape: Sequence[int] | None = None,
             export: bool = True, force: bool = False) -> Any:
    """Load a trained network, compress it (:func:`chipfit.compress.compress`) and, with ``out``, export it.

    ``out`` receives ``compressed.pt`` and ``report.json`` from the compression, and (``export``) ``model.onnx``
    (QDQ for integer quantization, float otherwise), checked against PyTorch in ONNX Runtime, with the ONNX Runtime
    latency of the baseline and of the compressed network in the report.

    Args:
        model: a model spec; a training checkpoint or run folder keeps its input normalisation.
        config: a :class:`~chipfit.compress.CompressConfig`; its teacher (distillation) is a model spec too.
        data: ``fashion-mnist``, a class-per-folder tree, or a loaded :class:`~chipfit.data.DataBundle`.
        force: write into an ``out`` that already holds files (never into the folder of the network compressed).
    """
    import copy

    from chipfit.compress import compress as run
    from chipfit.data import load_data

    loaded = load_model(model)
    if out is not None and loaded.path is not None and Path(out).resolve() == loaded.path.parent.resolve():
        raise ValueError(f"--out {out} is the folder of the network being compressed ({loaded.path.name}): its run "
                         "files would be overwritten; choose another --out")
    if loaded.kind == "compressed":
        raise ValueError(f"{loaded.path} is already compressed; compress the float checkpoint it came from")
    if loaded.module is None:
        raise ValueError(f"{loaded.name}: compression needs a PyTorch network, not an ONNX file")
    bundle = load_data(data, seed=config.seed) if isinstance(data, (str, Path)) else data
    if bundle is not None and loaded.norm:
        bundle.mean, bundle.std = loaded.norm["mean"], loaded.norm["std"]
    teacher = load_model(config.distill.teacher).module if config.distill is not None else None
    exporting = out is not None and export
    baseline = copy.deepcopy(loaded.module).eval() if exporting else None
    res = run(loaded.module, config, bundle, out=out, resume=resume, progress=progress, input_shape=input_shape,
              model_name=loaded.registry_name, teacher=teacher, force=force)
    if exporting:
        from chipfit.deploy import export_compressed

        shape = tuple(input_shape) if input_shape is not None else bundle.input_shape(1)
        export_compressed(res, Path(out), shape, bundle, baseline)
    return res


# --- training runs ------------------------------------------------------------------------------------------------


def train(model: str | nn.Module, data: str, cfg: Any, crop_pad: int = 2,
          flip: bool | None = None, task: str = "classify") -> tuple[Any, dict[str, Any] | None]:
    """Load data, build the model (seeded), train, and (unless interrupted) write the run's report.

    ``--out DIR`` receives ``last.pt``, ``best.pt``, ``metrics.jsonl``, ``report.json`` (``test_accuracy`` as a
    fraction, per-class accuracy, ``params``, ``macs``, ``train_seconds``, ``model``, the seed and the config) and
    ``confusion.png``.

    Args:
        model: a built-in name, a ``ModelConfig`` JSON file (sized for the data: classes, channels, image size),
            a ``module:factory`` path or a module.
        data: ``fashion-mnist`` or a class-per-folder tree.
        cfg: a :class:`~chipfit.train.TrainConfig`.
        crop_pad: random-crop augmentation after zero padding by this many pixels (0 disables it).
        flip: horizontal flips (default: the data set's own choice; on for Fashion-MNIST).
        task: classify, or segment / detect (then see :func:`train_dense`; ``crop_pad`` does not apply).

    Returns:
        (the training result, the report; ``None`` when the run was interrupted).
    """
    import torch

    from chipfit.data import load_data
    from chipfit.train import TrainConfig, fit

    if task != "classify":
        return train_dense(model, data, cfg, task=task, flip=flip)

    if crop_pad < 0:
        raise ValueError(f"crop padding must be >= 0, got {crop_pad}")
    bundle = load_data(data, seed=cfg.seed)
    side = min(bundle.image_size)
    if crop_pad > side // 4:
        raise ValueError(f"--crop-pad {crop_pad}: at most {side // 4} for {bundle.image_size[0]}x"
                         f"{bundle.image_size[1]} images (a quarter of the side); a larger pad crops mostly padding")
    bundle.pad = crop_pad
    if flip is not None:
        bundle.flip = flip
    torch.manual_seed(cfg.seed)  # the network's initial weights follow the seed too
    loaded = load_model(model, num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                        input_size=bundle.image_size[0])
    cfg = TrainConfig(**{**cfg.to_dict(), "model_name": loaded.registry_name})
    result = fit(loaded.module, bundle, cfg)
    if result.interrupted:
        return result, None
    return result, write_train_report(result, bundle, loaded.registry_name or loaded.name, cfg)


def write_train_report(result: Any, data: Any, name: str, cfg: Any) -> dict[str, Any]:
    """Test accuracy, per-class accuracy and the confusion matrix (PNG) of a finished run, plus its cost."""
    import json

    from chipfit.report.plots import confusion_png
    from chipfit.train import evaluate

    test = evaluate(result.model, data, "test", per_class=True)
    prof = count(result.model, data.input_shape(1))
    report = {
        "model": name,
        "data": data.name,
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "per_class_accuracy": test["per_class"],
        "best_val_accuracy": result.best_val_accuracy,
        "params": prof.total.params,
        "macs": prof.total.macs,
        "train_seconds": result.train_seconds,
        "epochs": len(result.history),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "history": result.history,
    }
    if result.out:
        (result.out / "report.json").write_text(json.dumps(report, indent=2))
        confusion_png(test["confusion"], data.classes, result.out / "confusion.png",
                      f"{name} on {data.name}: test accuracy {test['accuracy']:.2%}")
    return report


def train_dense(model: str | nn.Module, data: str, cfg: Any, *, task: str, flip: bool | None = None,
                data_options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any] | None]:
    """Train a segmenter or a detector and (unless interrupted) write its report.

    ``--out DIR`` receives the engine's files (``last.pt``, ``best.pt``, ``metrics.jsonl``) and ``report.json`` (the
    test metrics: mIoU, per-class IoU and pixel accuracy, or COCO mAP, mAP@0.5, mAP@0.75 and per-class AP@0.5;
    ``params``, ``macs`` at the data's image size, the config), ``per_image.json`` (one record per test image),
    ``predictions.png`` (test images with true and predicted masks or boxes) and ``per_image.png``.

    Args:
        model: a registered segmenter or detector (``chipfit models --task segment``), a module, or a checkpoint.
        data: ``fmnist-scenes``, ``trees``, ``nuclei`` or a folder (image + mask folders, Pascal VOC, COCO JSON).
        cfg: a :class:`~chipfit.train.TrainConfig`.
        task: segment or detect.
        flip: horizontal flips (default: on).
        data_options: passed to :func:`chipfit.data.dense.load_dense` (e.g. ``n_train`` for scenes).
    """
    import torch

    from chipfit.data.dense import load_dense
    from chipfit.train import TrainConfig, fit
    from chipfit.train.dense import make_task

    if task not in ("segment", "detect"):
        raise ValueError(f"--task {task!r}: classify, segment or detect")
    bundle = load_dense(data, task, seed=cfg.seed, **(data_options or {}))
    if flip is not None:
        bundle.flip = flip
    torch.manual_seed(cfg.seed)
    loaded = _load_dense_model(model, bundle, task)
    cfg = TrainConfig(**{**cfg.to_dict(), "model_name": loaded.registry_name})
    result = fit(loaded.module, bundle, cfg, task=make_task(task))
    if result.interrupted:
        return result, None
    return result, write_dense_report(result, bundle, loaded.registry_name or loaded.name, cfg, task)


def _load_dense_model(model: str | nn.Module, bundle: Any, task: str) -> Any:
    """The network, sized for the data (classes, channels, image size); a clear error for a network of the other
    task or a classifier."""
    from chipfit.models import get_entry

    h, w = bundle.image_size
    if isinstance(model, str) and checkpoint_path(model) is None and not model.endswith(".json") and ":" not in model:
        entry = get_entry(model)
        got = getattr(entry, "task", "classify")
        if got != task:
            from chipfit.models import list_models

            names = ", ".join(list_models(task=task))
            raise ValueError(f"{model} is a {got} network; --task {task} needs one of: {names}")
        module = entry.factory(num_classes=bundle.num_classes, in_chans=bundle.in_chans, input_size=(h, w))
        return LoadedModel(module, None, (1, bundle.in_chans, h, w), model, "builtin", registry_name=model)
    return load_model(model)


def write_dense_report(result: Any, data: Any, name: str, cfg: Any, task: str) -> dict[str, Any]:
    """Test metrics of a finished segmentation or detection run, its cost and its pictures."""
    import json
    import math

    import torch

    from chipfit.report.dense import per_image_png, predictions_png

    test = result.test_metrics or {}
    model = result.model
    prof = count(model, data.input_shape(1))
    per_image = test.get("per_image_iou") if task == "segment" else test.get("per_image")
    keep = ("miou", "pixel_accuracy", "per_class_iou") if task == "segment" else \
        ("map", "map50", "map75", "map_small", "map_medium", "map_large", "per_class_ap50")

    def clean(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        return v

    report = {
        "model": name, "data": data.name, "task": task, "score": result.score,
        "test_score": result.test_accuracy, "best_val_score": result.best_val_accuracy,
        "test": {k: clean(test.get(k)) for k in keep}, "test_images": len(data.test),
        "params": prof.total.params, "macs": prof.total.macs, "input_shape": list(data.input_shape(1)),
        "train_seconds": result.train_seconds, "epochs": len(result.history), "seed": cfg.seed,
        "config": cfg.to_dict(), "history": result.history,
    }
    if result.out:
        out = result.out
        (out / "report.json").write_text(json.dumps(report, indent=2))
        (out / "per_image.json").write_text(json.dumps(clean({"per_image": per_image}), indent=1))
        k = min(4, len(data.test))
        x = data.normalise(data.test.images[:k])
        model.eval()
        with torch.no_grad():
            raw = model(x)
        if task == "segment":
            preds = [{"mask": m} for m in raw.argmax(1).numpy()]
            truths = [{"mask": m} for m in data.test.masks[:k].numpy()]
            title = f"{name} on {data.name}: test mIoU {report['test_score']:.3f}"
            per_image_png(per_image or [], out / "per_image.png", f"{name}: per-image mIoU", "mean IoU of the image")
        else:
            preds = model.decode(*raw, image_size=data.image_size)
            truths = [{"boxes": b, "labels": lab} for b, lab in zip(data.test.boxes[:k], data.test.labels[:k],
                                                                     strict=True)]
            title = f"{name} on {data.name}: test mAP@0.5 {report['test_score']:.3f}"
            recall = [r["matched"] / r["num_gt"] if r["num_gt"] else float("nan") for r in per_image or []]
            per_image_png(recall, out / "per_image.png", f"{name}: per-image recall at IoU 0.5",
                          "boxes found (score >= 0.3) / boxes")
        predictions_png(data.test.images[:k].numpy(), truths, preds, data.classes, out / "predictions.png", title)
    return report


# --- search -----------------------------------------------------------------------------------------------------


def search(cfg: Any, *, retrain: int = 0, retrain_epochs: int = 3, zoo_accuracy: dict[str, float] | None = None,
           on_trial: Any = None) -> Any:
    """A hardware-aware search (:func:`chipfit.nas.run.search`, which sets the zoo baselines beside its front), then
    plots of the front per target and, with ``retrain`` K, the K best front networks (by estimated accuracy) trained
    from scratch with the zoo baselines' recipe (``retrain_epochs`` epochs, batch 128, AdamW lr 3e-3, cosine with 0.3
    warm-up epochs, weight decay 0.05, label smoothing 0.1, flips, no crop), their test accuracy written back into
    ``pareto.json``.

    Args:
        cfg: a :class:`~chipfit.nas.run.SearchConfig`.
        retrain: how many front networks to retrain (0: none).
        retrain_epochs: their epochs.
        zoo_accuracy: trained test accuracy of zoo networks by name, placing them on the plots.
        on_trial: called with every trial record the search completes.

    Returns:
        The :class:`~chipfit.nas.run.SearchOutcome` (its ``report`` is what ``pareto.json`` holds).
    """
    import json

    from chipfit.nas.run import search as run_search
    from chipfit.report.search import front_plots
    from chipfit.train import TrainConfig

    if retrain < 0 or retrain_epochs < 1:
        raise ValueError(f"--retrain {retrain} / --retrain-epochs {retrain_epochs}: must be >= 0 and >= 1")
    outcome = run_search(cfg, on_trial=on_trial)
    if outcome.interrupted:
        return outcome
    report, out = outcome.report, outcome.out
    front = sorted(outcome.front, key=lambda c: -c["accuracy_estimate"])
    for n, c in enumerate(front[:retrain]):
        tc = TrainConfig(epochs=retrain_epochs, batch_size=128, lr=3e-3, warmup_epochs=0.3, seed=cfg.seed,
                         out=str(out / "retrain" / f"{n:02d}"), progress=cfg.progress,
                         resume=(out / "retrain" / f"{n:02d}" / "last.pt").is_file())
        result, rep = train(c["config_file"], cfg.data, tc, crop_pad=0)
        if rep is None:
            outcome.interrupted = True
            break
        c["retrained"] = {"test_accuracy": rep["test_accuracy"], "epochs": retrain_epochs,
                          "train_seconds": rep["train_seconds"], "run": tc.out}
    if report.get("codesign"):
        from chipfit.report.search import codesign_plots

        report["plots"] = [str(p) for p in codesign_plots(report, out)]
    else:
        report["plots"] = [str(p) for p in front_plots(report, out, zoo_accuracy)]
    (out / "pareto.json").write_text(json.dumps(report, indent=2))
    return outcome
