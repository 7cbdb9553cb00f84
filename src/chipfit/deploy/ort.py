"""Measured latency: ONNX Runtime on this machine's CPU."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path


def ort_latency(path: str | Path, input_shape: Sequence[int], runs: int = 50) -> float:
    """Median seconds of one ONNX Runtime CPU run of the file at ``path`` (one thread per core available, after 5
    warm-up runs), on a fixed random input of ``input_shape``.

    This CPU need not have a fast int8 path: an int8 file need not run faster here than a float one; a chip's low
    precision is what the simulator models.
    """
    import numpy as np
    import onnxruntime as ort

    if runs < 1:
        raise ValueError(f"ort_latency needs at least one timed run, got runs={runs}")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)
    for _ in range(5):
        sess.run(None, {name: x})
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))
