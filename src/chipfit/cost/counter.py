"""``count``: capture a network (a PyTorch module or an ONNX file) and cost it; counts only, no chip.

This is the cost stage's entry point for every stage above it (training reports, compression, the simulator):
parameters, MACs, FLOPs and bytes come from here and nowhere else. Loading a model from a name, a factory path or a
checkpoint is the loader's job (:mod:`chipfit.load`); this function takes the module or the ONNX file itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch.nn as nn

from chipfit.cost._capture_onnx import capture_onnx
from chipfit.cost._capture_torch import capture_torch
from chipfit.cost.guidelines import check
from chipfit.cost.profile import Profile, analyze
from chipfit.cost.records import Precision


def count(model: nn.Module | str | Path, input_shape: Sequence[int] | None = None,
          precision: str | Precision = "fp32", *, fused: bool = True, mode: str = "auto",
          name: str | None = None) -> Profile:
    """The :class:`Profile` of ``model`` (a module, or the path of an ``.onnx`` file) on one input.

    Args:
        model: an ``nn.Module`` or an ONNX file.
        input_shape: e.g. ``(1, 3, 224, 224)``; required for a module, optional for ONNX (its own shape).
        precision: ``fp32``, ``int8``, ``w4a8``, ... (:class:`Precision`).
        fused: which execution mode ``total`` and ``layers`` report (both are always computed).
        mode: capture mode for modules: ``auto``, ``meta`` or ``real``.
        name: label of the network (default: the class or file name).
    """
    precision = Precision.parse(precision)
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise ValueError(f"give an input shape for {name or type(model).__name__} (e.g. 1x3x224x224)")
        graph = capture_torch(model, input_shape=tuple(input_shape), mode=mode, name=name or type(model).__name__)
    else:
        graph = capture_onnx(Path(model), None if input_shape is None else tuple(input_shape))
        if name:
            graph.model_name = name
    prof = analyze(graph, precision, fused=fused)
    prof.guidelines = check(prof)
    return prof
