"""Making networks small: BatchNorm folding, quantization, pruning, distillation, and QDQ ONNX export.

One verb, :func:`compress`, driven by config dataclasses (``config``); module transforms live in ``fold``,
``prune`` and ``quant`` (tensor-level functions apart, in ``quant.fake``); ``distill`` builds training hooks.
"""

import sys
import types

from chipfit.compress.api import CompressResult, compress, measure, size_bytes
from chipfit.compress.config import CompressConfig, DistillConfig, PruneConfig, QuantConfig

__all__ = ["CompressConfig", "CompressResult", "DistillConfig", "PruneConfig", "QuantConfig", "compress", "measure",
           "size_bytes"]


class _CallableModule(types.ModuleType):
    """``chipfit.compress(model, config, data=...)`` calls the verb while ``chipfit.compress.quant`` etc. stay
    importable: the package is its own entry point."""

    def __call__(self, *args, **kwargs) -> CompressResult:
        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
