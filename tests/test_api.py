"""`chipfit.profile` and `chipfit profile`: the user's doors, good and bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import chipfit
from chipfit.cli import app
from tests.cost.nets import NETS

runner = CliRunner()
RESNET = "tests.cost.nets:ResNetish"


def test_profile_api_shape_and_json_keys():
    p = chipfit.profile(NETS["resnet"][0](), (1, 3, 64, 64), hw="jetson-tx2", precision="fp16")
    assert p.total.macs > 0 and p.estimate.latency_s > 0 and p.estimate.energy_j > 0
    assert p.estimate.source == "roofline" and p.estimate.target == "jetson-tx2" and p.estimate.fused
    assert p.estimates["unfused"].latency_s >= p.estimates["fused"].latency_s
    assert p.total.params == sum(x.numel() for x in NETS["resnet"][0]().parameters())
    assert set(p.by_op_type()) >= {"conv", "linear", "pool"}
    assert p.by_module(depth=1)["layers"].macs > 0
    d = json.loads(p.to_json())
    assert {"total", "by_op_type", "layers", "unsupported", "estimates", "conventions"} <= set(d)
    assert d["execution"] == "fused" and d["estimates"]["fused"]["extra"]["chip"]["name"] == "jetson-tx2"
    assert d["total"]["macs"] == p.total.macs
    assert sum(layer["macs"] for layer in d["layers"]) == p.total.macs
    assert sum(layer["latency_s"] for layer in d["layers"]) == pytest.approx(p.estimate.latency_s)


def test_dtype_is_the_old_name_of_precision():
    with pytest.warns(DeprecationWarning, match="precision"):
        old = chipfit.profile("quadranet_s28", hw="edge-npu", dtype="int8")
    new = chipfit.profile("quadranet_s28", hw="edge-npu", precision="int8")
    assert old.estimate.latency_s == new.estimate.latency_s and old.precision == new.precision


def test_profile_without_chip_has_costs_but_no_time():
    p = chipfit.profile(NETS["convnext"][0](), "1x3x64x64")
    assert p.estimate is None and p.estimates == {} and p.total.flops > 2 * p.total.macs
    assert p.fusion()["latency_saved_s"] is None and "latency_s" not in p.to_dict()["layers"][0]


def test_import_chipfit_is_light():
    import subprocess
    import sys

    code = "import sys, chipfit; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_cli_profile_writes_json_csv_and_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[1])
    j, c, png = tmp_path / "p.json", tmp_path / "p.csv", tmp_path / "roof.png"
    r = runner.invoke(app, ["profile", RESNET, "--input", "1x3x64x64", "--hw", "cortex-a76", "--json", str(j),
                            "--csv", str(c), "--plot", str(png), "--by", "op"])
    assert r.exit_code == 0, r.output
    assert json.loads(j.read_text())["estimates"]["fused"]["target"] == "cortex-a76"
    assert c.read_text().splitlines()[0].startswith("name,module")
    assert png.stat().st_size > 10_000 and (tmp_path / "roof_layers.png").stat().st_size > 10_000
    assert "conv" in r.output and "totals" in r.output


def test_cli_profile_onnx(tmp_path):
    model = NETS["mobilenetv2"][0]().eval()
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False)
    r = runner.invoke(app, ["profile", str(path), "--hw", "myriad-x", "--dtype", "fp16", "--unfused"])
    assert r.exit_code == 0, r.output
    assert "unfused (reported)" not in r.output and "fused" in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["profile", "resnet5O"], "unknown model 'resnet5O'"),
        (["profile", RESNET, "--input", "1x5x64x64"], "failed on input 1x5x64x64"),
        (["profile", RESNET, "--input", "1x3xbig"], "not of the form"),
        (["profile", RESNET, "--input", "1x3x64x64", "--hw", "tpu-v1", "--precision", "fp32"],
         "tpu-v1 has no fp32 peak"),
        (["profile", RESNET, "--input", "1x3x64x64", "--dtype", "fp12"], "unknown precision"),
        (["profile", RESNET, "--input", "1x3x64x64", "--plot", "x.png"], "--plot needs a chip"),
        (["profile", "nosuchpkg.mod:f"], "cannot import 'nosuchpkg.mod'"),
        (["profile", "missing.onnx"], "no such file"),
    ],
)
def test_cli_bad_input_is_one_clean_message(args, message, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[1])
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output


def test_cli_malformed_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08garbage")
    r = runner.invoke(app, ["profile", str(bad)])
    assert r.exit_code == 2 and "not a valid ONNX model" in r.output


def test_cli_bad_hw_yaml(tmp_path):
    y = tmp_path / "chip.yaml"
    y.write_text("name: x\npeak_ops_per_s: {fp32: 1e12}\n")
    r = runner.invoke(app, ["profile", "tests.cost.nets:ResNetish", "--input", "1x3x32x32", "--hw", str(y)])
    assert r.exit_code == 2 and "missing required field" in r.output


def test_cli_unsupported_op_is_reported_on_stderr(tmp_path, monkeypatch):
    (tmp_path / "weirdnet.py").write_text(
        "import torch\nclass W(torch.nn.Module):\n    def forward(self, x):\n        return torch.fft.rfft(x).abs()\n"
    )
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["profile", "weirdnet:W", "--input", "1x16"])
    assert r.exit_code == 0, r.output
    assert "unsupported" in r.output and "fft" in r.output


def test_simulate_is_exported_lazily():
    import chipfit

    res = chipfit.simulate("quadranet_s28", "edge-npu")
    assert res.total["macs"] == chipfit.profile("quadranet_s28").total.macs
    est = res.estimate()
    assert est.source == "simulator" and est.latency_s == res.total["time_s"] and est.fused


def test_one_name_for_a_target_across_profile_and_simulate():
    r = runner.invoke(app, ["profile", "quadranet_s28", "--hw", "edge-npu"])
    assert r.exit_code == 0 and "precision int8: edge-npu has no fp32" in " ".join(r.output.split()), r.output
    r = runner.invoke(app, ["simulate", "quadranet_s28", "--hw", "edge-npu"])
    assert r.exit_code == 0 and "deprecated" not in r.output, r.output
    r = runner.invoke(app, ["simulate", "quadranet_s28", "--arch", "edge-npu"])
    assert r.exit_code == 0 and "deprecated: --arch is now --hw" in r.output, r.output


def test_a_factory_that_raises_is_one_clean_message(tmp_path, monkeypatch):
    (tmp_path / "brokennet.py").write_text("def build():\n    raise RuntimeError('boom: no weights here')\n")
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["profile", "brokennet:build", "--input", "1x3x8x8"])
    assert r.exit_code == 2 and "brokennet:build raised RuntimeError: boom: no weights here" in r.output
    assert "Traceback" not in r.output


def test_a_model_config_that_is_a_list_is_one_clean_message(tmp_path):
    cfg = tmp_path / "net.json"
    cfg.write_text("[1, 2, 3]")
    r = runner.invoke(app, ["profile", str(cfg)])
    assert r.exit_code == 2 and "must be a JSON object" in r.output and "Traceback" not in r.output


def test_bracketed_words_in_a_message_are_shown_as_written():
    r = runner.invoke(app, ["profile", "[bold]net[/bold]"])
    assert r.exit_code == 2 and "'[bold]net[/bold]'" in r.output


def test_profile_never_writes_over_its_model(tmp_path):
    model = NETS["mobilenetv2"][0]().eval()
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False)
    size = path.stat().st_size
    r = runner.invoke(app, ["profile", str(path), "--json", str(path)])
    assert r.exit_code == 2 and "is an input" in r.output and path.stat().st_size == size


def test_models_lists_names_at_once_and_counts_on_request():
    import re

    count = re.compile(r"\b\d+(\.\d+)? [kMG]\b")  # a count as the table writes it: 2.23 M, 512 k
    r = runner.invoke(app, ["models", "--family", "mobilenetv2"])
    assert r.exit_code == 0 and "mobilenetv2_s28" in r.output and not count.search(r.output)
    r = runner.invoke(app, ["models", "--family", "mobilenetv2", "--counts"])
    assert r.exit_code == 0 and count.search(r.output)
