"""compress(): the report's keys and steps, the files in --out (no ONNX: that is deploy's), distillation's teacher."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from chipfit.compress import CompressConfig, DistillConfig, PruneConfig, QuantConfig, compress
from chipfit.compress.api import TEACHER_NEEDED
from tests.train.test_engine import toy_data


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def test_compress_needs_data():
    with pytest.raises(ValueError, match="need data"):
        compress(_net(), CompressConfig(quant=QuantConfig()))
    with pytest.raises(ValueError, match="input_shape"):
        compress(_net(), CompressConfig())


def test_compress_end_to_end_writes_its_files(tmp_path):
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
    # the network is exported and timed by chipfit.deploy.export_compressed, not here
    assert {p.name for p in tmp_path.iterdir() if p.is_file()} == {"compressed.pt", "report.json"}
    assert set(rep) == {"config", "baseline", "compressed", "steps", "onnx"} and rep["onnx"] is None
    assert "ort_latency_s" not in rep["baseline"] and "ort_latency_s" not in rep["compressed"]
    assert res.compressed["latency_s"] < res.baseline["latency_s"]  # 8-bit data on an 8-bit array


def test_an_out_folder_with_files_is_refused_unless_forced(tmp_path):
    """No report.json there (the old check), yet model.onnx would be lost: refused; --force writes over it."""
    (tmp_path / "model.onnx").write_bytes(b"someone's model")
    cfg = CompressConfig(quant=QuantConfig.from_name("fp16"))
    with pytest.raises(FileExistsError, match=r"holds files \(model.onnx\).*--force"):
        compress(_net(), cfg, toy_data(), out=tmp_path, progress=False)
    assert (tmp_path / "model.onnx").read_bytes() == b"someone's model"
    compress(_net(), cfg, toy_data(), out=tmp_path, progress=False, force=True)
    assert (tmp_path / "report.json").is_file()


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


def test_distillation_takes_the_loaded_teacher(tmp_path):
    data = toy_data()
    cfg = CompressConfig(distill=DistillConfig("teacher/best.pt"), finetune_epochs=1, batch_size=32,
                         max_steps_per_epoch=2)
    with pytest.raises(ValueError, match="teacher=") as e:
        compress(_net(), cfg, data, progress=False)
    assert str(e.value) == TEACHER_NEEDED
    teacher = _net()
    res = compress(_net(), cfg, data, out=tmp_path, progress=False, teacher=teacher)
    assert [s["step"] for s in res.steps] == ["baseline", "finetune", "fold"]
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())  # frozen, eval mode
    assert res.report["config"]["distill"]["teacher"] == "teacher/best.pt"
