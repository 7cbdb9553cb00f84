"""export_onnx: the file's form follows the network (float, fp16-emulated float, QDQ), and ONNX Runtime agrees with
PyTorch on it; export_float writes one input and one output of the export shape."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from chipfit.compress import QuantConfig
from chipfit.compress.quant import quantize
from chipfit.deploy import export_float, export_onnx, max_abs_diff, onnx_format
from tests.compress.quant.test_modules import calibrated_net, small_net


def test_float_export_runs_in_ort_like_pytorch(tmp_path):
    import onnxruntime as ort

    m = small_net()
    path = export_float(m, tmp_path / "f.onnx", (1, 1, 8, 8))
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 1, 8, 8]
    x = torch.randn(1, 1, 8, 8)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, {"input": x.numpy()})[0], m(x).numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("preset", "fmt"), [(None, "float"), ("fp16", "fp16-emulated float"), ("int8", "QDQ"),
                                             ("int4", "QDQ")])
def test_export_onnx_picks_the_form_and_checks_it(tmp_path, preset, fmt):
    if preset is None:
        m = small_net().eval()
    elif preset == "fp16":
        m = quantize(small_net().eval(), QuantConfig.from_name("fp16"))
    else:
        m = calibrated_net(QuantConfig.from_name(preset, per_channel=True))
    assert onnx_format(m) == fmt
    x = torch.randn(8, 1, 8, 8)
    info = export_onnx(m, tmp_path / "m.onnx", (1, 1, 8, 8), sample=x)
    assert info["file"] == str(tmp_path / "m.onnx") and info["format"] == fmt
    if fmt == "QDQ":
        assert set(info) == {"file", "reference", "optimized", "max_abs_diff", "logit_step", "format"}
        assert info["max_abs_diff"] <= info["logit_step"]  # within one quantization step of the fake-quant model
    else:
        assert set(info) == {"file", "format", "max_abs_diff"}
        assert info["max_abs_diff"] < 1e-4
        assert info["max_abs_diff"] == max_abs_diff(m, tmp_path / "m.onnx", x)


def test_export_onnx_without_a_sample_uses_random_inputs(tmp_path):
    info = export_onnx(small_net(), tmp_path / "m.onnx", (1, 1, 8, 8))
    assert info["format"] == "float" and info["max_abs_diff"] < 1e-4
