"""ort_latency: a positive number of seconds from ONNX Runtime, and a clear error for no timed run."""

from __future__ import annotations

import pytest

from chipfit.deploy import export_float, ort_latency
from tests.compress.quant.test_modules import small_net


def test_ort_latency_is_a_positive_float(tmp_path):
    path = export_float(small_net(), tmp_path / "f.onnx", (1, 1, 8, 8))
    t = ort_latency(path, (1, 1, 8, 8), runs=3)
    assert isinstance(t, float) and t > 0
    with pytest.raises(ValueError, match="runs"):
        ort_latency(path, (1, 1, 8, 8), runs=0)
