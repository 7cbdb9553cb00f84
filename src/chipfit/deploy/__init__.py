"""Deployment: a network exported to ONNX (float or QDQ), checked against PyTorch in ONNX Runtime, and its latency
measured there.

``onnx`` writes and checks a file (:func:`export_onnx`, :func:`export_float`), ``qdq`` the quantized form and ONNX
Runtime's own post-training quantization for comparison, ``ort`` measures latency (:func:`ort_latency`), and
``compressed`` completes what ``chipfit compress`` leaves in its folder (:func:`export_compressed`). ONNX Runtime is
imported only when a file is run.
"""

from chipfit.deploy.compressed import export_compressed
from chipfit.deploy.onnx import export_float, export_onnx, max_abs_diff, onnx_format
from chipfit.deploy.ort import ort_latency
from chipfit.deploy.qdq import export_qdq, ort_quantize_static, verify_qdq

__all__ = ["export_compressed", "export_float", "export_onnx", "export_qdq", "max_abs_diff", "onnx_format",
           "ort_latency", "ort_quantize_static", "verify_qdq"]
