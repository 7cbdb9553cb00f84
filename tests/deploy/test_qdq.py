"""QDQ ONNX export: the file holds Q/DQ pairs (per-channel axes, zero points), ONNX Runtime computes what the
fake-quant model computes, and ONNX Runtime's own static quantization runs for comparison."""

from __future__ import annotations

import onnx
import pytest
import torch

from chipfit.compress import QuantConfig
from chipfit.compress.quant import quantize
from chipfit.deploy import export_qdq, ort_quantize_static, verify_qdq
from tests.compress.quant.test_modules import calibrated_net, small_net


@pytest.mark.parametrize(("name", "per_channel", "symmetric"),
                         [("int8", False, True), ("int8", True, True), ("int4", True, True), ("binary", True, True),
                          ("int8", False, False), ("int4", True, False)])
def test_qdq_export_matches_fake_quant(tmp_path, name, per_channel, symmetric):
    m = calibrated_net(QuantConfig.from_name(name, per_channel=per_channel, symmetric=symmetric))
    path = export_qdq(m, tmp_path / "q.onnx", (1, 1, 8, 8))
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") >= 5
    if per_channel:
        axes = [a.i for n in onnx.load(str(path)).graph.node if n.op_type == "DequantizeLinear"
                for a in n.attribute if a.name == "axis"]
        assert 0 in axes
    if not symmetric:  # the weights' zero points reach the file
        zps = [i for i in onnx.load(str(path)).graph.initializer if "zero_point" in i.name]
        assert any(onnx.numpy_helper.to_array(z).any() for z in zps)
    res = verify_qdq(m, path, torch.randn(16, 1, 8, 8))
    assert res["reference"]["max_abs_diff"] <= res["logit_step"]  # within one quantization step
    assert res["reference"]["argmax_agreement"] == 1.0


def test_export_needs_calibration(tmp_path):
    m = quantize(small_net(), QuantConfig())
    with pytest.raises(ValueError, match="calibrate"):
        export_qdq(m, tmp_path / "q.onnx", (1, 1, 8, 8))


def test_ort_quantize_static_runs(tmp_path):
    import onnxruntime as ort

    m = small_net().eval()
    f = tmp_path / "f.onnx"
    torch.onnx.export(m, (torch.zeros(1, 1, 8, 8),), str(f), dynamo=False, opset_version=17)
    q = ort_quantize_static(f, tmp_path / "q.onnx", [torch.randn(1, 1, 8, 8) for _ in range(8)], per_channel=True)
    sess = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: torch.randn(1, 1, 8, 8).numpy()})[0]
    assert out.shape == (1, 4)
    assert "QuantizeLinear" in [n.op_type for n in onnx.load(str(q)).graph.node]
