"""compress(): storage closed forms, the report's keys, files in --out, a compressed checkpoint that rebuilds."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from chipfit.compress import CompressConfig, PruneConfig, QuantConfig, compress, size_bytes
from chipfit.compress.api import INDEX_BITS
from tests.train.test_engine import toy_data


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def test_size_bytes_closed_form():
    net = _net()
    weights = 8 * 9 + 8 * 8 * 9 + 8 * 2
    others = 8 + 8 + 8 + 2 + 8  # conv biases, BN weight and bias, linear bias (BN buffers are not parameters)
    assert size_bytes(net) == 4 * (weights + others)
    assert size_bytes(net, QuantConfig.from_name("int8")) == weights + 4 * others
    assert size_bytes(net, QuantConfig.from_name("int4")) == weights // 2 + 4 * others
    assert size_bytes(net, QuantConfig.from_name("binary")) == weights // 8 + 4 * others
    assert size_bytes(net, QuantConfig.from_name("fp16")) == 2 * (weights + others)
    with torch.no_grad():  # a mostly-zero tensor is stored as values + indices when that is smaller
        net[3].weight[:, :7] = 0
    nnz = 8 * 1 * 9
    sparse = nnz * (32 + INDEX_BITS) / 8
    assert size_bytes(net) == 4 * (weights - 8 * 8 * 9 + others) + sparse


def test_compress_needs_data():
    with pytest.raises(ValueError, match="need data"):
        compress(_net(), CompressConfig(quant=QuantConfig()))
    with pytest.raises(ValueError, match="input_shape"):
        compress(_net(), CompressConfig())


def test_compress_end_to_end_writes_files_and_rebuilds(tmp_path):

    data = toy_data()
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))
    cfg = CompressConfig(quant=QuantConfig.from_name("int8", per_channel=True), prune=PruneConfig(0.5),
                         finetune_epochs=1, calib_images=64, batch_size=32)
    res = compress(net, cfg, data, out=tmp_path, progress=False)
    rep = json.loads((tmp_path / "report.json").read_text())
    for part in ("baseline", "compressed"):
        assert {"accuracy", "size_bytes", "macs", "latency_s", "energy_j"} <= set(rep[part])
        # deployment fuses BN/activations/adds into their convs: less DRAM traffic, never slower
        assert rep[part]["latency_fused_s"] <= rep[part]["latency_s"]
        assert rep[part]["energy_fused_j"] < rep[part]["energy_j"]
        assert 0.0 <= rep[part]["accuracy"] <= 1.0
    assert rep["compressed"]["size_bytes"] < rep["baseline"]["size_bytes"] / 4  # int8 and half the weights zero
    assert [s["step"] for s in rep["steps"]] == ["baseline", "prune", "finetune", "fold", "calibrate"]
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "compressed.pt").is_file()
    assert res.onnx["reference"]["max_abs_diff"] <= res.onnx["logit_step"]
    assert res.compressed["latency_s"] < res.baseline["latency_s"]  # 8-bit data on an 8-bit array


def test_cli_compress_errors_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from chipfit.cli import app

    r = CliRunner().invoke(app, ["compress", str(tmp_path / "none.pt"), "--data", "fashion-mnist", "--out",
                                 str(tmp_path / "o"), "--quantize", "int3"])
    assert r.exit_code == 2 and "unknown quantization 'int3'" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "none.pt"), "--data", "fashion-mnist", "--out",
                                 str(tmp_path / "o"), "--quantize", "int8"])
    assert r.exit_code == 2 and "no such checkpoint" in r.output
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "none.pt"), "--data", "fashion-mnist", "--out",
                                 str(tmp_path / "o"), "--structured"])
    assert r.exit_code == 2 and "--structured needs --prune" in r.output
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "none.pt"), "--data", "fashion-mnist", "--out",
                                 str(tmp_path / "o"), "--quantize", "binary", "--asymmetric"])
    assert r.exit_code == 2 and "binary weights are symmetric" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "none.pt"), "--data", "fashion-mnist", "--out",
                                 str(tmp_path / "o"), "--prune", "0.5", "--prune-scope", "net"])
    assert r.exit_code == 2 and "scope must be global or layer" in r.output
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "none.pt"), "--data", "fashion-mnist", "--out",
                                 str(tmp_path / "o"), "--prune", "0.5", "--prune-groups", "hidden"])
    assert r.exit_code == 2 and "structured" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "none.pt"), "--data", "fashion-mnist", "--out",
                                 str(tmp_path / "o"), "--prune", "0.5", "--prune-allocation", "sensitivity"])
    assert r.exit_code == 2 and "structured" in r.output and "Traceback" not in r.output


def test_the_package_is_the_verb():
    import chipfit

    assert callable(chipfit.compress)
    import chipfit.compress.quant

    assert chipfit.compress.quant.quantize  # submodules stay importable
    with pytest.raises(ValueError, match="need data"):
        chipfit.compress(_net(), CompressConfig(quant=QuantConfig()))


def test_channel_pruned_batchnorm_network_rebuilds_from_its_checkpoint(tmp_path):
    """Channel pruning with BatchNorm in place (statistics re-estimated), then folding and int8: the checkpoint
    rebuilds the same network (plan on the unfolded net, then fold, then quantize)."""
    from chipfit.models import create_model
    from chipfit.train.run import model_from_checkpoint

    torch.manual_seed(0)
    net = create_model("mobilenetv2_s28", num_classes=2, in_chans=1)
    cfg = CompressConfig(quant=QuantConfig.from_name("int8", per_channel=True),
                         prune=PruneConfig(0.5, structured=True), finetune_epochs=1, calib_images=64, batch_size=32,
                         max_steps_per_epoch=2)
    res = compress(net, cfg, toy_data(), out=tmp_path, progress=False, model_name="mobilenetv2_s28")
    prune = next(s for s in res.steps if s["step"] == "prune")
    assert prune["batchnorm_recalibrated"] and prune["params_after"] < prune["params_before"] / 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in res.model.modules())
    back, _ = model_from_checkpoint(tmp_path / "compressed.pt")
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(back(x), res.model.eval()(x))
