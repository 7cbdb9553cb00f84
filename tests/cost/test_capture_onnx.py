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


def test_hand_built_graph_closed_forms(tmp_path):
    """An ONNX graph written with onnx.helper (no exporter involved): conv, relu, maxpool, flatten, Gemm(transB),
    resize, softmax."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros((4,), np.float32), "b")
    fc = numpy_helper.from_array(np.zeros((10, 64), np.float32), "fc")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="/conv/Conv"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["p", "", "scales"], ["u"], mode="linear"),
        helper.make_node("MaxPool", ["u"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y0"], transB=1),
        helper.make_node("Softmax", ["y0"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, b, fc, scales])
    path = tmp_path / "hand.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    p = analyze(capture_onnx(path), fused=False)
    by = {lay.kinds[0]: lay for lay in p.layers}
    assert by["conv"].cost.macs == 4 * 8 * 8 * 27 and by["conv"].module == "conv"
    assert by["relu"].cost.flops == 4 * 64
    assert by["linear"].cost.macs == 64 * 10  # Gemm with a weight initializer is a linear layer
    assert by["interp"].cost.flops == 8 * 4 * 8 * 8  # bilinear: 8 FLOPs per output element
    assert by["softmax"].cost.flops == 5 * 10
    assert p.total.params == 4 * 27 + 4 + 640  # Resize's float scales steer the op: not parameters


def _small_model():
    """Conv, then Resize: a graph built with onnx.helper, for the refusals below."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((2, 1, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros((2,), np.float32), "b")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="/conv/Conv"),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest", name="/up/Resize")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], [w, b, scales])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_refusals_fuzzing_found(tmp_path):
    """Each was a bare exception from deep inside: a name that is not UTF-8 (protobuf hands over bytes), an
    initializer with more data than its dims hold (the checker only checks for too little), a Resize mode that is
    not UTF-8, and a non-positive --input."""
    import onnx

    path = tmp_path / "m.onnx"
    onnx.save(_small_model(), str(path))
    assert capture_onnx(path).nodes  # the unmutated model captures
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"/conv/Conv", b"/conv/C\xffnv"))
    with pytest.raises(OnnxError, match=r"m\.onnx: a name \(node 0\) is not valid UTF-8 text: b'/conv/C\\xffnv'"):
        capture_onnx(path)
    path.write_bytes(raw.replace(b"nearest", b"neares\xff"))
    with pytest.raises(OnnxError, match=r"m\.onnx: node '/up/Resize' \(Resize\) has mode 'neares\ufffd'; ONNX knows "
                                        r"nearest, linear and cubic"):
        capture_onnx(path)
    m = _small_model()
    m.graph.initializer[1].dims[0] = 1  # b holds 2 floats
    onnx.save(m, str(path))
    with pytest.raises(OnnxError, match=r"m\.onnx: initializer 'b' holds data that does not fit its dims \[1\]"):
        capture_onnx(path)
    onnx.save(_small_model(), str(path))
    with pytest.raises(OnnxError, match=r"m\.onnx: --input \[1, 1, 0, 4\] must be positive whole numbers"):
        capture_onnx(path, input_shape=(1, 1, 0, 4))


def test_an_exception_without_a_message_is_no_crash():
    """``str(e).splitlines()[0]`` on an empty message was an IndexError inside the error handler."""
    from chipfit.cost._capture_onnx import _first_line

    assert _first_line(RuntimeError()) == "RuntimeError"
    assert _first_line(ValueError("\n\n  first\nsecond")) == "ValueError: first"
    assert len(_first_line(ValueError("x" * 1000))) == 200
