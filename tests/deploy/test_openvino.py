"""to_openvino and openvino_check: an ONNX file converted to model.xml/.bin with float32 weights, agreeing with
PyTorch; without OpenVINO, one line that says how to install it."""

from __future__ import annotations

import builtins

import pytest
import torch

from chipfit.deploy import export_float, openvino_check, to_openvino
from chipfit.deploy.openvino import OPENVINO_MISSING, openvino_version
from tests.compress.quant.test_modules import small_net

SHAPE = (1, 1, 8, 8)


def test_convert_and_check_a_small_network(tmp_path):
    pytest.importorskip("openvino")
    m = small_net().eval()
    onnx_path = export_float(m, tmp_path / "m.onnx", SHAPE)
    xml = to_openvino(onnx_path, tmp_path / "ov")
    assert xml == tmp_path / "ov" / "model.xml" and (tmp_path / "ov" / "model.bin").is_file()
    text = xml.read_text()
    assert 'element_type="f32"' in text and 'element_type="f16"' not in text  # no compression to fp16
    params = sum(p.numel() for p in m.parameters())
    assert (tmp_path / "ov" / "model.bin").stat().st_size >= 4 * params  # float32 weights, 4 bytes each
    assert openvino_check(xml, m, torch.randn(4, *SHAPE[1:])) < 1e-5
    assert openvino_version()[:4].isdigit()


def test_a_missing_file_is_refused(tmp_path):
    pytest.importorskip("openvino")
    with pytest.raises(ValueError, match="no such file"):
        to_openvino(tmp_path / "nothing.onnx", tmp_path)


@pytest.fixture
def no_openvino(monkeypatch):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


@pytest.mark.parametrize("call", ["convert", "check", "version"])
def test_without_openvino_one_line_says_how_to_install_it(tmp_path, no_openvino, call):
    with pytest.raises(ValueError) as e:
        if call == "convert":
            to_openvino(tmp_path / "m.onnx", tmp_path)
        elif call == "check":
            openvino_check(tmp_path / "model.xml", small_net(), torch.zeros(SHAPE))
        else:
            openvino_version()
    assert str(e.value) == OPENVINO_MISSING == "OpenVINO is not installed: pip install 'chipfit[openvino]'"
    assert e.value.__cause__ is None  # one line, not an ImportError chained under it
