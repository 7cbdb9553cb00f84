"""Making networks small: BatchNorm folding, quantization, pruning, distillation, and QDQ ONNX export.

One verb, :func:`compress`, driven by config dataclasses (``config``); module transforms live in ``fold``,
``prune`` and ``quant`` (tensor-level functions apart, in ``quant.fake``); ``distill`` builds training hooks.
"""

from chipfit.compress.api import CompressResult, compress, measure, size_bytes
from chipfit.compress.config import CompressConfig, DistillConfig, PruneConfig, QuantConfig

__all__ = ["CompressConfig", "CompressResult", "DistillConfig", "PruneConfig", "QuantConfig", "compress", "measure",
           "size_bytes"]
