"""The public entry points that combine stages: ``chipfit.profile``.

Kept above ``cost/`` and ``hw/`` so that data flows one way: models -> cost records -> hardware models.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from chipfit.cost import Precision, Profile, analyze, capture_onnx, capture_torch
from chipfit.cost.guidelines import check
from chipfit.hw import Chip, load_chip
from chipfit.hw.roofline import apply_chip


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``1x3x224x224`` (or ``1,3,224,224``) -> (1, 3, 224, 224); ValueError with the expected form otherwise."""
    if not isinstance(text, str):
        shape = tuple(int(d) for d in text)
    else:
        parts = text.lower().replace(",", "x").replace(" ", "").split("x")
        try:
            shape = tuple(int(p) for p in parts if p)
        except ValueError:
            raise ValueError(f"input shape {text!r} is not of the form 1x3x224x224") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"input shape {text!r}: every dimension must be a positive integer, e.g. 1x3x224x224")
    return shape


def resolve_model(spec: str | nn.Module, **kwargs: Any) -> tuple[nn.Module | Path, tuple[int, ...] | None, str]:
    """Turn a model spec into (module or ONNX path, default input shape, label).

    ``spec`` is an ``nn.Module``, a built-in name (``quadranet36_t``), a ``package.module:factory`` path, or a
    path to an ``.onnx`` file.
    """
    if isinstance(spec, nn.Module):
        return spec, None, type(spec).__name__
    spec = str(spec)
    if spec.lower().endswith(".onnx") or Path(spec).suffix.lower() == ".onnx":
        return Path(spec), None, Path(spec).stem
    if Path(spec).suffix.lower() in (".pt", ".pth") or (Path(spec).is_dir() and (Path(spec) / "best.pt").is_file()):
        from chipfit.train.run import model_from_checkpoint

        path = Path(spec) / "best.pt" if Path(spec).is_dir() else Path(spec)
        model, _ = model_from_checkpoint(path)
        cfg = getattr(model, "config", None)
        shape = (1, cfg.in_chans, cfg.input_size, cfg.input_size) if cfg is not None else None
        return model, shape, path.parent.name if path.name in ("best.pt", "last.pt") else path.stem
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        if os.getcwd() not in sys.path:  # a user's own package in the working directory, as uvicorn does
            sys.path.insert(0, os.getcwd())
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise ValueError(f"cannot import {mod_name!r} (from {spec!r}): {e}") from e
        factory = getattr(mod, attr, None)
        if factory is None:
            raise ValueError(f"{mod_name!r} has no attribute {attr!r}")
        model = factory(**kwargs) if callable(factory) and not isinstance(factory, nn.Module) else factory
        if not isinstance(model, nn.Module):
            raise ValueError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
        return model, None, attr
    from chipfit.models import get_entry

    entry = get_entry(spec)
    return entry.factory(**kwargs), entry.input_shape, spec


def profile(
    model: str | nn.Module,
    input_shape: Sequence[int] | str | None = None,
    hw: str | Chip | None = None,
    dtype: str | Precision = "fp32",
    fused: bool = True,
    mode: str = "auto",
) -> Profile:
    """Profile a network: parameters, MACs, FLOPs, bytes, structure, fusion and guidelines, and, given a chip,
    roofline latency and energy.

    Args:
        model: an ``nn.Module``, a built-in name, a ``package.module:factory`` path, an ``.onnx`` file, or a
            training checkpoint (``.pt``, or a run folder holding ``best.pt``).
        input_shape: e.g. ``(1, 3, 224, 224)`` or ``"1x3x224x224"``; defaults to a built-in model's own shape.
        hw: a chip name (``chipfit hw list``), a YAML file, or a :class:`~chipfit.hw.Chip`.
        dtype: ``fp32``, ``fp16``, ``int8``, ... or ``wXaY`` for separate weight and activation bits.
        fused: whether ``total`` and ``layers`` assume fused execution (both modes are always computed).
        mode: capture mode for PyTorch models: ``auto``, ``meta`` or ``real``.
    """
    precision = Precision.parse(dtype)
    chip = load_chip(hw) if isinstance(hw, str) else hw
    if chip is not None:
        chip.peak(precision.compute)  # fail early, naming the dtypes the chip supports
    target, default_shape, name = resolve_model(model)
    shape = parse_shape(input_shape) if input_shape is not None else default_shape
    if isinstance(target, Path):
        graph = capture_onnx(target, shape)
    else:
        if shape is None:
            raise ValueError(f"give an input shape for {name} (e.g. 1x3x224x224)")
        graph = capture_torch(target, input_shape=shape, mode=mode, name=name)
    prof = analyze(graph, precision, fused=fused)
    if chip is not None:
        prof = apply_chip(prof, chip)
    prof.guidelines = check(prof)
    return prof
