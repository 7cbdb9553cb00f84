"""export_compressed: after compress(), --out holds compressed.pt, model.onnx and report.json with the report's keys;
the ONNX file agrees with the compressed network; both networks get an ONNX Runtime latency."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn as nn

from chipfit.compress import CompressConfig, QuantConfig, compress
from chipfit.deploy import export_compressed
from tests.train.test_engine import toy_data

MEASURED = {"accuracy", "size_bytes", "params", "dense_macs", "macs", "weight_sparsity", "latency_s", "energy_j",
            "latency_fused_s", "energy_fused_j", "arch", "bits", "weight_bits"}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 2))


@pytest.mark.parametrize(("preset", "onnx_keys"), [
    ("int8", {"file", "reference", "optimized", "max_abs_diff", "logit_step", "format", "ort_latency_s"}),
    (None, {"file", "format", "max_abs_diff", "ort_latency_s"})])
def test_export_compressed_writes_the_three_files(tmp_path, preset, onnx_keys):
    data = toy_data()
    net = _net().eval()
    baseline = copy.deepcopy(net)  # before compress() changes the network in place
    cfg = CompressConfig(quant=QuantConfig.from_name(preset, per_channel=True) if preset else None, calib_images=64,
                         batch_size=32)
    res = compress(net, cfg, data, out=tmp_path, progress=False)
    info = export_compressed(res, tmp_path, data.input_shape(1), data, baseline)
    assert {p.name for p in tmp_path.iterdir()} == {"compressed.pt", "model.onnx", "report.json"}
    rep = json.loads((tmp_path / "report.json").read_text())
    assert set(rep) == {"config", "baseline", "compressed", "steps", "onnx"}
    for part in ("baseline", "compressed"):
        assert set(rep[part]) == MEASURED | {"ort_latency_s"} and rep[part]["ort_latency_s"] > 0
    assert info is res.onnx and set(rep["onnx"]) == onnx_keys
    assert rep["onnx"]["file"] == str(tmp_path / "model.onnx")
    assert rep["compressed"]["ort_latency_s"] == rep["onnx"]["ort_latency_s"]
    if preset:
        assert rep["onnx"]["format"] == "QDQ" and rep["onnx"]["max_abs_diff"] <= rep["onnx"]["logit_step"]
    else:
        assert rep["onnx"]["format"] == "float" and rep["onnx"]["max_abs_diff"] < 1e-4
    assert rep == json.loads(json.dumps(res.report))


def test_without_a_baseline_only_the_compressed_network_is_timed(tmp_path):
    res = compress(_net(), CompressConfig(quant=QuantConfig.from_name("fp16")), input_shape=(1, 1, 8, 8))
    export_compressed(res, tmp_path, (1, 1, 8, 8))
    assert {p.name for p in tmp_path.iterdir()} == {"model.onnx", "report.json"}  # compress() wrote nothing here
    assert res.onnx["format"] == "fp16-emulated float"
    assert "ort_latency_s" not in res.baseline and res.compressed["ort_latency_s"] > 0
