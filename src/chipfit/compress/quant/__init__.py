"""Quantization: tensor-level functions (``fake``), fake-quantized layers (``modules``) and the transforms
(``transform``: quantize, calibrate). Their QDQ ONNX export lives in :mod:`chipfit.deploy.qdq`."""

from chipfit.compress.quant.transform import calibrate, quant_bits, quantize

__all__ = ["calibrate", "quant_bits", "quantize"]
