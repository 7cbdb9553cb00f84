"""A training run as the command line does it: model and data from names, files left in ``--out``.

``--out DIR`` receives ``last.pt``, ``best.pt``, ``metrics.jsonl``, ``report.json`` (``test_accuracy`` as a
fraction, per-class accuracy, ``params``, ``macs``, ``train_seconds``, ``model``, the seed and the config) and
``confusion.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn as nn

from chipfit.data import DataBundle, load_data
from chipfit.train.checkpoint import CheckpointError, load_checkpoint
from chipfit.train.engine import TrainConfig, TrainResult, evaluate, fit


def build_from_spec(model: str, data: DataBundle) -> tuple[nn.Module, str | None]:
    """A registry name or a ModelConfig JSON file -> a network sized for ``data`` (classes, channels)."""
    from chipfit.models import ModelConfig, build_model, create_model

    path = Path(model)
    if path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"model config {path}: no such file")
        try:
            cfg = ModelConfig.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        cfg = cfg.replace(num_classes=data.num_classes, in_chans=data.in_chans, input_size=data.image_size[0])
        return build_model(cfg), None
    return create_model(model, num_classes=data.num_classes, in_chans=data.in_chans), model


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network a checkpoint was saved from (its spec) and load its weights."""
    from chipfit.models import ModelConfig, build_model, create_model

    state = load_checkpoint(path)
    spec = json.loads(state["model_spec"])
    if spec.get("config"):
        model = build_model(ModelConfig.from_dict(spec["config"]))
    elif spec.get("name"):
        model = create_model(spec["name"])
    else:
        raise CheckpointError(f"{path}: the checkpoint names no architecture (class {spec.get('class')}); "
                              "rebuild the model in Python and load state['model']")
    if "compress_config" in state:  # written by chipfit compress: re-apply its transforms, then load
        from chipfit.compress.api import rebuild_compressed

        return rebuild_compressed(model, state), state
    model.load_state_dict(state["model"])
    return model, state


def write_report(result: TrainResult, data: DataBundle, name: str, cfg: TrainConfig) -> dict[str, Any]:
    """Test accuracy, per-class accuracy and the confusion matrix (PNG) of a finished run, plus its cost."""
    import chipfit

    test = evaluate(result.model, data, "test", per_class=True)
    prof = chipfit.profile(result.model, data.input_shape(1))
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


def confusion_png(conf: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), row-normalised colours, counts in the cells."""
    import numpy as np

    from chipfit.report.plots import _plt, save

    plt = _plt()
    c = np.asarray(conf, dtype=float)
    norm = c / np.maximum(c.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(c[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    return save(fig, path)


def run(model: str, data: str, cfg: TrainConfig, crop_pad: int = 2,
        flip: bool | None = None) -> tuple[TrainResult, dict[str, Any] | None]:
    """Load data, build the model, train, and (unless interrupted) write the report.

    Args:
        crop_pad: random-crop augmentation after zero padding by this many pixels (0 disables it).
        flip: horizontal flips (default: the data set's own choice; on for Fashion-MNIST).
    """
    if crop_pad < 0:
        raise ValueError(f"crop padding must be >= 0, got {crop_pad}")
    bundle = load_data(data, seed=cfg.seed)
    bundle.pad = crop_pad
    if flip is not None:
        bundle.flip = flip
    net, name = build_from_spec(model, bundle)
    cfg = TrainConfig(**{**cfg.to_dict(), "model_name": name})
    result = fit(net, bundle, cfg)
    if result.interrupted:
        return result, None
    return result, write_report(result, bundle, name or Path(model).stem, cfg)
