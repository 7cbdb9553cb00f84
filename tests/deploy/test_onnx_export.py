"""export_float_info: the torch.export-based exporter writes the float file (and says so), the legacy TorchScript one
only as a fallback that is said aloud; onnxslim's graph is kept only where it stays correct; a file that does not
match PyTorch is refused."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

import chipfit.deploy.onnx as dx
from chipfit.compress import QuantConfig
from chipfit.deploy.onnx import ExportFallbackWarning, export_float, export_float_info, max_abs_diff
from chipfit.models import create_model
from tests.compress.quant.test_modules import calibrated_net, small_net

SHAPE = (1, 1, 8, 8)


def _ort(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.numpy()})[0]


def test_the_torch_export_based_exporter_writes_the_file_and_says_so(tmp_path):
    m = small_net()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = export_float_info(m, tmp_path / "f.onnx", SHAPE)
    # the TorchScript exporter's deprecation notice belongs to the fallback only
    assert not [w for w in caught if "TorchScript" in str(w.message) or issubclass(w.category, ExportFallbackWarning)]
    assert info["exporter"] == "torch.export" and info["fallback"] is None and info["opset"] == dx.OPSET == 20
    proto = onnx.load(str(tmp_path / "f.onnx"))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [20]
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["logits"]
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == list(SHAPE)  # no dynamic axes
    x = torch.randn(*SHAPE)
    with torch.no_grad():
        np.testing.assert_allclose(_ort(tmp_path / "f.onnx", x), m(x).numpy(), atol=1e-5, rtol=1e-4)
    assert info["max_abs_diff"] <= info["tolerance"] == pytest.approx(dx.tolerance(info["logit_scale"]))


def test_a_zoo_network_matches_pytorch_and_slimming_keeps_it_correct(tmp_path):
    """quadranet_s28, not mobilenetv2: an untrained MobileNetV2's logits are ~1e-8 (zero-initialised last BN of each
    block), which any file would match."""
    m = create_model("quadranet_s28", num_classes=10).eval()
    shape = (1, 1, 28, 28)
    info = export_float_info(m, tmp_path / "q.onnx", shape)
    s = info["slim"]
    assert s["applied"] and s["note"] is None and s["version"]
    assert s["nodes_after"] <= s["nodes_before"] and len(onnx.load(str(tmp_path / "q.onnx")).graph.node) == \
        s["nodes_after"]
    assert info["logit_scale"] > 1e-3 and info["max_abs_diff"] <= info["tolerance"]
    x = torch.randn(3, *shape[1:])  # inputs the export did not check on
    assert max_abs_diff(m, tmp_path / "q.onnx", x) <= info["tolerance"]


def test_the_legacy_exporter_is_a_fallback_that_says_why(tmp_path, monkeypatch):
    def fails(model, x):
        raise RuntimeError("cannot trace this\nand many more lines")

    monkeypatch.setattr(dx, "_dynamo", fails)
    m = small_net()
    with pytest.warns(ExportFallbackWarning, match=r"torch.export-based .* failed .*RuntimeError: cannot trace this"
                                                   r".*legacy TorchScript"):
        info = export_float_info(m, tmp_path / "f.onnx", SHAPE)
    assert info["exporter"] == "torchscript" and info["opset"] == dx.LEGACY_OPSET
    assert info["fallback"] == "RuntimeError: cannot trace this"
    assert info["max_abs_diff"] <= info["tolerance"]
    assert onnx.load(str(tmp_path / "f.onnx")).opset_import[0].version == dx.LEGACY_OPSET
    with pytest.warns(ExportFallbackWarning):  # the Path-returning form says it too
        export_float(m, tmp_path / "g.onnx", SHAPE)


def test_both_exporters_failing_is_one_value_error(tmp_path, monkeypatch):
    def fails(model, x):
        raise RuntimeError("boom")

    monkeypatch.setattr(dx, "_dynamo", fails)
    monkeypatch.setattr(dx, "_torchscript", fails)
    with pytest.raises(ValueError, match="torch.export-based exporter failed.*and so did the legacy"):
        export_float_info(small_net(), tmp_path / "f.onnx", SHAPE)
    assert not (tmp_path / "f.onnx").exists()


def _perturbed(proto):
    """A copy of ``proto`` whose first float initializer is off by 1: a wrong graph."""
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    init = next(t for t in out.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 1.0, init.name))
    return out


@pytest.mark.parametrize("broken", ["raises", "wrong"])
def test_a_slimmed_graph_that_fails_or_differs_is_not_kept(tmp_path, monkeypatch, broken):
    import onnxslim

    def slim(model, *args, **kwargs):
        if broken == "raises":
            raise RuntimeError("slim failed")
        return _perturbed(model)

    monkeypatch.setattr(onnxslim, "slim", slim)
    m = small_net()
    with pytest.warns(ExportFallbackWarning, match="onnxslim's graph was not kept"):
        info = export_float_info(m, tmp_path / "f.onnx", SHAPE)
    assert not info["slim"]["applied"] and "not kept" in info["slim"]["note"]
    assert info["max_abs_diff"] <= info["tolerance"]
    assert max_abs_diff(m, tmp_path / "f.onnx", torch.randn(2, *SHAPE[1:])) < 1e-5


def test_a_file_that_does_not_match_pytorch_is_refused(tmp_path, monkeypatch):
    real = dx._dynamo
    monkeypatch.setattr(dx, "_dynamo", lambda model, x: _perturbed(real(model, x)))
    with pytest.raises(ValueError, match="differs from PyTorch by .* beyond the tolerance"):
        export_float_info(small_net(), tmp_path / "f.onnx", SHAPE, slim=False)
    assert not (tmp_path / "f.onnx").exists()


def test_fake_quant_layers_are_beyond_torch_export_so_qdq_stays_on_the_legacy_exporter():
    """Why export_qdq keeps the TorchScript exporter (chipfit.deploy.onnx's docstring): if torch.export learns to
    trace ``bool(self.ready)``, this fails, and the decision can be revisited."""
    m = calibrated_net(QuantConfig.from_name("int8"))
    with pytest.raises(Exception):  # noqa: B017 - torch's own error types vary between releases
        dx._dynamo(m, torch.zeros(SHAPE))


def test_a_module_with_python_control_flow_falls_back_and_still_matches(tmp_path):
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.register_buffer("on", torch.tensor(True))

        def forward(self, x):
            if bool(self.on):  # data-dependent: torch.export refuses, the tracer records the branch taken
                x = x * 2
            return self.fc(x.flatten(1))

    with pytest.warns(ExportFallbackWarning):
        info = export_float_info(Branchy(), tmp_path / "b.onnx", (1, 4))
    assert info["exporter"] == "torchscript" and info["fallback"] and info["max_abs_diff"] <= info["tolerance"]
