"""After ``chipfit compress``: the compressed network exported to ONNX, checked and timed in ONNX Runtime.

:func:`chipfit.compress.compress` leaves ``compressed.pt`` and ``report.json`` in its folder; :func:`export_compressed`
adds ``model.onnx`` and completes the report with what deployment measures:

    onnx          the file, its ``format`` (QDQ for integer quantization, float otherwise), ``max_abs_diff`` between
                  its logits in ONNX Runtime and PyTorch's (for QDQ also the per-session figures and ``logit_step`` of
                  :func:`chipfit.deploy.qdq.verify_qdq`), and ``ort_latency_s``
    ort_latency_s in ``compressed`` (of ``model.onnx``) and ``baseline`` (of the float network, exported alike):
                  median of ONNX Runtime CPU runs, batch 1 (:func:`chipfit.deploy.ort.ort_latency`)
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from chipfit.compress.api import CompressResult
from chipfit.deploy.onnx import SAMPLE_IMAGES, export_float, export_onnx
from chipfit.deploy.ort import ort_latency


def export_compressed(result: CompressResult, out: str | Path, input_shape: Sequence[int], data: Any = None,
                      baseline_model: nn.Module | None = None) -> dict[str, Any]:
    """Write ``out/model.onnx`` of ``result.model``, check it, time it and rewrite ``out/report.json``.

    Fills ``result.onnx``, ``result.compressed["ort_latency_s"]`` and, given ``baseline_model``,
    ``result.baseline["ort_latency_s"]``.

    Args:
        result: what :func:`chipfit.compress.compress` returned.
        out: the folder it wrote (``compressed.pt``, ``report.json``).
        input_shape: the one input of the file, e.g. (1, 1, 28, 28).
        data: the :class:`~chipfit.data.DataBundle` compressed on: its first test images check the file (16 random
            inputs without it).
        baseline_model: the float network before compression (a copy taken before ``compress`` changed it in place),
            timed in ONNX Runtime for the baseline's figure.

    Returns:
        ``result.onnx``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shape = tuple(input_shape)
    if baseline_model is not None:
        with tempfile.TemporaryDirectory() as tmp:
            result.baseline["ort_latency_s"] = ort_latency(export_float(baseline_model, Path(tmp) / "float.onnx",
                                                                        shape), shape)
    sample = data.normalise(data.test.images[:SAMPLE_IMAGES]) if data is not None else None
    result.model.eval()
    info = export_onnx(result.model, out / "model.onnx", shape, sample=sample)
    info["ort_latency_s"] = ort_latency(out / "model.onnx", shape)
    result.onnx = info
    result.compressed["ort_latency_s"] = info["ort_latency_s"]
    (out / "report.json").write_text(json.dumps(result.report, indent=2))
    return info
