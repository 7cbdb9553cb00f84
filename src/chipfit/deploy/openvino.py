"""OpenVINO: an ONNX file converted to OpenVINO's own form (``model.xml`` + ``model.bin``), checked against PyTorch.

The conversion keeps float32 weights: ``openvino.save_model`` would compress them to float16 by default, which changes
the numbers a comparison with PyTorch sees and is the runtime's choice, not the network's; here it is off. A QDQ
file converts to FakeQuantize operations that OpenVINO runs as int8. The check compiles for the CPU with
``INFERENCE_PRECISION_HINT=f32`` (OpenVINO would pick bf16 on CPUs with AMX), as :mod:`chipfit.deploy.measure` does.
OpenVINO is the optional extra ``chipfit[openvino]``, imported only here and only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

OPENVINO_MISSING = "OpenVINO is not installed: pip install 'chipfit[openvino]'"


def _openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise ValueError(OPENVINO_MISSING) from None
    return openvino


def openvino_version() -> str:
    """The installed OpenVINO's version (ValueError with the install command where it is missing)."""
    return str(_openvino().get_version())


def to_openvino(onnx_path: str | Path, out_dir: str | Path) -> Path:
    """Convert ``onnx_path`` with ``openvino.convert_model`` and write ``out_dir/model.xml`` and ``model.bin``
    (float32 weights: no compression to float16); returns the ``.xml`` path.

    Raises:
        ValueError: OpenVINO is not installed, the file is missing, or OpenVINO cannot convert it.
    """
    ov = _openvino()
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    if not onnx_path.is_file():
        raise ValueError(f"{onnx_path}: no such file")
    out_dir.mkdir(parents=True, exist_ok=True)
    xml = out_dir / "model.xml"
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:  # OpenVINO's frontend on an operator it lacks: one line for the user
        first = (str(e).strip().splitlines() or ["(no message)"])[0][:300]
        raise ValueError(f"OpenVINO cannot convert {onnx_path.name}: {type(e).__name__}: {first}") from None
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def openvino_logits(xml_path: str | Path, x: torch.Tensor):
    """Logits of the OpenVINO model at ``xml_path`` (CPU, f32 inference) on ``x``, image by image (the file has a
    fixed batch of one)."""
    import numpy as np

    ov = _openvino()
    core = ov.Core()
    compiled = core.compile_model(str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    out = compiled.outputs[0]
    return np.concatenate([np.asarray(request.infer({0: x[i:i + 1].numpy()})[out]) for i in range(len(x))])


def openvino_check(xml_path: str | Path, model: nn.Module, x: torch.Tensor) -> float:
    """Largest |difference| between the logits of ``model`` (PyTorch, eval mode) and of the OpenVINO model at
    ``xml_path`` on the inputs ``x``: :func:`chipfit.deploy.onnx.max_abs_diff` for OpenVINO."""
    import numpy as np

    with torch.no_grad():
        ref = model.eval()(x).float().numpy()
    return float(np.abs(openvino_logits(xml_path, x) - ref).max())
