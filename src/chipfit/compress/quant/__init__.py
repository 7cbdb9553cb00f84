"""Quantization: tensor-level functions (``fake``), fake-quantized layers (``modules``), the transforms
(``transform``: quantize, calibrate) and QDQ ONNX export (``export``)."""

from chipfit.compress.quant.export import export_qdq, ort_quantize_static, verify_qdq
from chipfit.compress.quant.transform import calibrate, quant_bits, quantize

__all__ = ["calibrate", "export_qdq", "ort_quantize_static", "quant_bits", "quantize", "verify_qdq"]
