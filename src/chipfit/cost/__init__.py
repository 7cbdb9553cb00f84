"""What a network costs: op-graph capture (PyTorch or ONNX), per-op handlers, fusion, guidelines.

Conventions are stated once, in :mod:`chipfit.cost.records`.
"""

from chipfit.cost._capture_onnx import OnnxError, capture_onnx
from chipfit.cost._capture_torch import CaptureError, capture_torch
from chipfit.cost.graph import Graph
from chipfit.cost.profile import Layer, Profile, analyze
from chipfit.cost.records import CONVENTIONS, Cost, OpNode, Precision, TensorRef

__all__ = [
    "CONVENTIONS",
    "CaptureError",
    "Cost",
    "Graph",
    "Layer",
    "OnnxError",
    "OpNode",
    "Precision",
    "Profile",
    "TensorRef",
    "analyze",
    "capture_onnx",
    "capture_torch",
]
