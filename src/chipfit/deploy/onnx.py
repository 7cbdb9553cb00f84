"""ONNX export of a network as :func:`chipfit.compress.compress` leaves it, checked in ONNX Runtime.

The file's form follows the network: QDQ (:mod:`chipfit.deploy.qdq`) when it holds integer fake-quantized layers,
float otherwise (``fp16-emulated float`` when its layers round to half precision: the file holds those rounded
weights in float32). Every file has one input ``input`` of the export shape and one output ``logits``
(opset 17, the legacy TorchScript exporter).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from chipfit.compress.quant.modules import Fp16, QuantLayer
from chipfit.deploy.qdq import export_qdq, verify_qdq

OPSET = 17
SAMPLE_IMAGES = 16  # inputs on which the file is compared with PyTorch when none are given


def export_float(model: nn.Module, path: str | Path, input_shape: Sequence[int]) -> Path:
    """Write a float ``model`` (put in eval mode) as ONNX; returns the path."""
    path = Path(path)
    model.eval()
    torch.onnx.export(model, (torch.zeros(tuple(input_shape)),), str(path), dynamo=False, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"])
    return path


def max_abs_diff(model: nn.Module, path: str | Path, x: torch.Tensor) -> float:
    """Largest |difference| between the logits of ``model`` and of the ONNX file at ``path`` (ONNX Runtime, CPU,
    run image by image since the file has a fixed batch of one) on the inputs ``x``."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    with torch.no_grad():
        ref = model.eval()(x).float().numpy()
    got = np.concatenate([sess.run(None, {name: x[i:i + 1].numpy()})[0] for i in range(len(x))])
    return float(np.abs(got - ref).max())


def onnx_format(model: nn.Module) -> str:
    """``QDQ``, ``fp16-emulated float`` or ``float``: how :func:`export_onnx` writes ``model``."""
    if any(isinstance(m, QuantLayer) for m in model.modules()):
        return "QDQ"
    if any(isinstance(m, Fp16) for m in model.modules()):
        return "fp16-emulated float"
    return "float"


def export_onnx(model: nn.Module, path: str | Path, input_shape: Sequence[int], *,
                sample: torch.Tensor | None = None) -> dict[str, Any]:
    """Write ``model`` as ONNX (QDQ or float, see the module's text) and compare the file with it in ONNX Runtime.

    Args:
        model: a float network or one :func:`chipfit.compress.compress` quantized (calibrated).
        path: the ``.onnx`` file to write.
        input_shape: the one input the file takes, e.g. (1, 1, 28, 28).
        sample: inputs for the comparison (normalised images, any batch size); default 16 standard normal ones.

    Returns:
        ``file``, ``format`` and ``max_abs_diff`` (largest |logit difference|); for QDQ also what
        :func:`~chipfit.deploy.qdq.verify_qdq` measures (``reference``, ``optimized``, ``logit_step``).
    """
    x = sample if sample is not None else torch.randn(SAMPLE_IMAGES, *tuple(input_shape)[1:])
    info: dict[str, Any] = {"file": str(path)}
    fmt = onnx_format(model)
    if fmt == "QDQ":
        export_qdq(model, path, tuple(input_shape))
        info.update(verify_qdq(model, path, x))
        info["format"] = fmt
    else:
        export_float(model, path, input_shape)
        info.update({"format": fmt, "max_abs_diff": max_abs_diff(model, path, x)})
    return info
