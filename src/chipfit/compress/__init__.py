"""Making networks small: BatchNorm folding, quantization, pruning and distillation.

One verb, :func:`compress`, driven by config dataclasses (``config``); module transforms live in ``fold``,
``prune`` and ``quant`` (tensor-level functions apart, in ``quant.fake``); ``distill`` builds training hooks;
``measure`` gives the figures of the report and ``checkpoint`` writes and rebuilds ``compressed.pt``. Exporting a
compressed network and timing it in ONNX Runtime is :mod:`chipfit.deploy`'s job.
"""

import sys
import types

from chipfit.compress.api import CompressResult, compress
from chipfit.compress.checkpoint import rebuild_compressed, save_compressed
from chipfit.compress.config import CompressConfig, DistillConfig, PruneConfig, QuantConfig
from chipfit.compress.measure import measure, size_bytes

__all__ = ["CompressConfig", "CompressResult", "DistillConfig", "PruneConfig", "QuantConfig", "compress", "measure",
           "rebuild_compressed", "save_compressed", "size_bytes"]


class _CallableModule(types.ModuleType):
    """``chipfit.compress(model, config, data=...)`` calls the verb while ``chipfit.compress.quant`` etc. stay
    importable: the package is its own entry point."""

    def __call__(self, *args, **kwargs) -> CompressResult:
        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
