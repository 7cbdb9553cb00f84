"""What a network costs: op-graph capture (PyTorch or ONNX), per-op handlers, fusion, guidelines.

Conventions are stated once, in :mod:`chipfit.cost.records`. The names below load on first use, so that a stage
which needs only the records (the simulator on a SCALE-Sim topology, say) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "CONVENTIONS": "chipfit.cost.records",
    "Cost": "chipfit.cost.records",
    "OpNode": "chipfit.cost.records",
    "Precision": "chipfit.cost.records",
    "TensorRef": "chipfit.cost.records",
    "Graph": "chipfit.cost.graph",
    "Layer": "chipfit.cost.profile",
    "Profile": "chipfit.cost.profile",
    "analyze": "chipfit.cost.profile",
    "OnnxError": "chipfit.cost._capture_onnx",
    "capture_onnx": "chipfit.cost._capture_onnx",
    "CaptureError": "chipfit.cost._capture_torch",
    "capture_torch": "chipfit.cost._capture_torch",
    "count": "chipfit.cost.counter",
}

if TYPE_CHECKING:  # pragma: no cover
    from chipfit.cost._capture_onnx import OnnxError, capture_onnx  # noqa: F401
    from chipfit.cost._capture_torch import CaptureError, capture_torch  # noqa: F401
    from chipfit.cost.counter import count  # noqa: F401
    from chipfit.cost.graph import Graph  # noqa: F401
    from chipfit.cost.profile import Layer, Profile, analyze  # noqa: F401
    from chipfit.cost.records import CONVENTIONS, Cost, OpNode, Precision, TensorRef  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'chipfit.cost' has no attribute {name!r}")


__all__ = sorted(_LAZY)
