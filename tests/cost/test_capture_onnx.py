"""The ONNX front end: the same MACs as the PyTorch path on exported networks, and clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from chipfit.cost import OnnxError, analyze, capture_onnx, capture_torch
from tests.cost.nets import NETS

pytest.importorskip("onnx")


def _export(model, shape, path, dynamo=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(shape),), str(path), dynamo=dynamo, opset_version=17 if not dynamo
                          else 18)


@pytest.mark.parametrize("name", sorted(NETS))
def test_onnx_macs_equal_torch_macs(name, tmp_path):
    cls, shape = NETS[name]
    model = cls().eval()
    path = tmp_path / f"{name}.onnx"
    _export(model, shape, path)
    t = analyze(capture_torch(model, input_shape=shape), fused=False)
    o = analyze(capture_onnx(path), fused=False)
    assert o.total.macs == t.total.macs
    bt, bo = t.by_op_type(), o.by_op_type()
    assert bo["conv"].macs == bt["conv"].macs if "conv" in bt else "conv" not in bo
    assert bo["linear"].macs == bt["linear"].macs
    assert not o.unsupported


def test_dynamo_export_gives_the_same_macs(tmp_path):
    pytest.importorskip("onnxscript")
    cls, shape = NETS["window_attention"]
    model = cls().eval()
    _export(model, shape, tmp_path / "m.onnx", dynamo=True)
    o = capture_onnx(tmp_path / "m.onnx")
    assert analyze(o).total.macs == analyze(capture_torch(model, input_shape=shape)).total.macs
    assert any(n.module == "qkv" for n in o.nodes)  # module names from the exporter's scopes


def test_dynamic_batch_needs_and_takes_an_input_shape(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    path = tmp_path / "dyn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False,
                          dynamic_axes={"input": {0: "batch"}}, input_names=["input"])
    g = capture_onnx(path, input_shape=(5, 3, 8, 8))
    assert analyze(g).total.macs == 5 * 4 * 36 * 27
    with pytest.raises(OnnxError, match="unknown|dynamic"):
        capture_onnx(path)
    with pytest.raises(OnnxError, match="dimensions"):
        capture_onnx(path, input_shape=(1, 3, 8))


def test_malformed_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\x01\x02")
    with pytest.raises(OnnxError, match="not a valid ONNX model"):
        capture_onnx(bad)
    with pytest.raises(OnnxError, match="no such file"):
        capture_onnx(tmp_path / "missing.onnx")
