"""deploy_model and ``chipfit deploy``: the folder's files, the manifest's keys and hashes, the int8 paths (ONNX
Runtime's static quantization, a chipfit-quantized network's own QDQ export), refusal of a folder that holds files,
and the command's one error path."""

from __future__ import annotations

import datetime
import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from chipfit.cli import app
from chipfit.compress import QuantConfig
from chipfit.deploy import deploy_model
from tests.compress.quant.test_modules import calibrated_net, small_net

SHAPE = (1, 1, 8, 8)
SPEC = "tests.compress.quant.test_modules:small_net"
KEYS = {"model", "input_shape", "precision", "format", "runtime", "runtime_version", "deploy_file", "export", "slim",
        "onnxslim_version", "max_abs_diff", "checks", "check_inputs", "quantization", "openvino", "hw", "predicted",
        "cpu", "threads", "chipfit_version", "torch_version", "date", "measurement", "files"}
runner = CliRunner()


def _run_ort(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def test_the_float_folder_and_its_manifest(tmp_path):
    out = tmp_path / "dep"
    man = deploy_model(small_net(), out, input_shape=SHAPE, model_name="small", measure=False)
    assert {p.name for p in out.iterdir()} == {"model.onnx", "manifest.json"}
    assert json.loads((out / "manifest.json").read_text()) == man and set(man) == KEYS
    assert man["model"] == "small" and man["input_shape"] == list(SHAPE) and man["precision"] == "fp32"
    assert man["runtime"] == "ort" and man["runtime_version"] and man["deploy_file"] == "model.onnx"
    assert man["export"]["exporter"] == "torch.export" and man["export"]["opset"] == 20
    assert man["slim"]["nodes_after"] <= man["slim"]["nodes_before"] and man["onnxslim_version"]
    assert man["max_abs_diff"] == man["checks"]["model.onnx"]["max_abs_diff"] < 1e-5
    assert "random" in man["check_inputs"] and man["quantization"] is None and man["measurement"] is None
    assert man["cpu"] and man["threads"] == 1 and man["chipfit_version"]
    assert datetime.datetime.fromisoformat(man["date"]).tzinfo is not None
    f = man["files"]["model.onnx"]
    data = (out / "model.onnx").read_bytes()
    assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["bytes"] == len(data)


def test_int8_is_a_qdq_file_that_runs_in_ort_and_says_it_was_calibrated_on_noise(tmp_path):
    m = small_net().eval()
    man = deploy_model(m, tmp_path, input_shape=SHAPE, quantize="int8", calib_images=8, measure=False)
    assert {p.name for p in tmp_path.iterdir()} == {"model.onnx", "model_int8.onnx", "manifest.json"}
    assert man["precision"] == "int8" and man["deploy_file"] == "model_int8.onnx"
    ops = {n.op_type for n in onnx.load(str(tmp_path / "model_int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = torch.randn(*SHAPE)
    got = _run_ort(tmp_path / "model_int8.onnx", x)
    with torch.no_grad():
        ref = m(x).numpy()
    assert got.shape == ref.shape and np.abs(got - ref).max() < 0.1 * np.abs(ref).max() + 0.05
    q = man["quantization"]
    assert q["random_calibration"] and "random" in q["calibration"] and q["calibration_images"] == 8
    assert set(man["files"]) == {"model.onnx", "model_int8.onnx"}
    assert man["max_abs_diff"] == man["checks"]["model_int8.onnx"]["max_abs_diff"]


def test_given_calibration_images_are_not_called_random(tmp_path):
    man = deploy_model(small_net(), tmp_path, input_shape=SHAPE, quantize="int8", calib=torch.randn(4, 1, 8, 8),
                       measure=False)
    assert not man["quantization"]["random_calibration"] and man["quantization"]["calibration"] == "4 given images"
    with pytest.raises(ValueError, match=r"calibration images have shape \(4, 3, 8, 8\)"):
        deploy_model(small_net(), tmp_path / "b", input_shape=SHAPE, quantize="int8", calib=torch.randn(4, 3, 8, 8),
                     measure=False)


def test_a_chipfit_quantized_network_is_deployed_as_its_own_qdq_export(tmp_path):
    m = calibrated_net(QuantConfig.from_name("int8", per_channel=True))
    man = deploy_model(m, tmp_path, input_shape=SHAPE, measure=False)
    assert {p.name for p in tmp_path.iterdir()} == {"model_int8.onnx", "manifest.json"}
    assert man["format"] == "QDQ" and man["precision"] == "int8" and man["export"]["exporter"] == "torchscript"
    assert "chipfit compress" in man["quantization"]["by"]
    check = man["checks"]["model_int8.onnx"]
    assert check["reference_session"]["max_abs_diff"] <= check["logit_step"]


def test_a_folder_that_holds_files_is_refused_unless_forced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty \(notes.txt\); pass --force to overwrite"):
        deploy_model(small_net(), tmp_path, input_shape=SHAPE, measure=False)
    deploy_model(small_net(), tmp_path, input_shape=SHAPE, quantize="int8", calib_images=2, force=True, measure=False)
    man = deploy_model(small_net(), tmp_path, input_shape=SHAPE, force=True, measure=False)
    # the earlier deploy's int8 file is gone (it would sit beside the new one unlisted); the user's file stays
    assert {p.name for p in tmp_path.iterdir()} == {"notes.txt", "model.onnx", "manifest.json"}
    assert set(man["files"]) == {"model.onnx"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"runtime": "tflite"}, "runtime must be one of"),
    ({"quantize": "int4"}, "quantize must be int8"),
    ({"input_shape": (1, 0, 8, 8)}, "positive integers"),
    ({"input_shape": None}, "give input_shape"),
    ({"repeats": 0}, "repeats must be an integer"),
])
def test_bad_options_are_value_errors(tmp_path, kwargs, message):
    args = {"input_shape": SHAPE, "measure": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        deploy_model(small_net(), tmp_path / "d", **args)
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_openvino_adds_the_converted_model(tmp_path):
    pytest.importorskip("openvino")
    man = deploy_model(small_net(), tmp_path, input_shape=SHAPE, runtime="openvino", measure=False)
    assert {"model.onnx", "model.xml", "model.bin"} <= set(man["files"]) and man["deploy_file"] == "model.xml"
    assert man["checks"]["model.xml"]["max_abs_diff"] <= man["checks"]["model.xml"]["tolerance"]
    assert man["openvino"]["converted_from"] == "model.onnx" and "fp32" in man["openvino"]["weights"]


def test_measured_beside_the_roofline_prediction(tmp_path):
    pytest.importorskip("chipfit.deploy.measure")
    man = deploy_model(small_net(), tmp_path, input_shape=SHAPE, hw="edge-npu", processes=2, repeats=3)
    meas = json.loads((tmp_path / "measurement.json").read_text())
    assert man["measurement"]["median_s"] == meas["median_s"] > 0 and len(meas["samples_s"]) == 2
    assert man["files"]["measurement.json"]["sha256"] == hashlib.sha256(
        (tmp_path / "measurement.json").read_bytes()).hexdigest()
    p = man["predicted"]
    assert man["hw"] == "edge-npu" and p["source"] == "roofline" and p["hw"] == "edge-npu" and p["latency_s"] > 0
    assert man["measurement"]["measured_over_predicted"] == pytest.approx(meas["median_s"] / p["latency_s"])


def test_cli_deploys_a_model_spec(tmp_path):
    out = tmp_path / "dep"
    r = runner.invoke(app, ["deploy", SPEC, "--out", str(out), "--input-shape", "1x1x8x8", "--quantize", "int8",
                            "--calib", "4", "--hw", "edge-npu", "--no-measure"])
    assert r.exit_code == 0, r.output
    assert "model_int8.onnx" in r.output and "max |diff|" in r.output and "predicted (roofline, edge-npu" in r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["model"] == "small_net" and man["hw"] == "edge-npu" and man["precision"] == "int8"


@pytest.mark.parametrize(("args", "message"), [
    (["--runtime", "tflite"], "--runtime must be one of"),
    (["--quantize", "int4"], "--quantize takes int8"),
    (["--input-shape", "1xa"], "not of the form"),
    (["--hw", "no-such-chip"], "no-such-chip"),
])
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, args, message):
    r = runner.invoke(app, ["deploy", SPEC, "--out", str(tmp_path / "d"), "--no-measure",
                            *(["--input-shape", "1x1x8x8"] if "--input-shape" not in args else []), *args])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output


def test_cli_refuses_a_folder_that_holds_files(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    r = runner.invoke(app, ["deploy", SPEC, "--out", str(tmp_path), "--input-shape", "1x1x8x8", "--no-measure"])
    assert r.exit_code == 2 and "error:" in r.output and "--force" in r.output, r.output


def test_an_onnx_file_is_deployed_as_it_is(tmp_path):
    from chipfit.deploy import export_float

    src = export_float(small_net(), tmp_path / "given.onnx", SHAPE)
    man = deploy_model(src, tmp_path / "dep", input_shape=None, quantize="int8", calib_images=2, measure=False)
    assert man["input_shape"] == list(SHAPE) and man["model"] == "given" and man["export"]["exporter"] is None
    assert man["files"]["model.onnx"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert man["checks"]["model.onnx"]["max_abs_diff"] == 0.0 and "ONNX Runtime on given.onnx" in \
        man["checks"]["model_int8.onnx"]["against"]


class Branchy(torch.nn.Module):
    """Data-dependent Python control flow: torch.export refuses it, the legacy tracer records the branch taken."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.register_buffer("on", torch.tensor(True))

    def forward(self, x):
        if bool(self.on):
            x = x * 2
        return self.fc(x.flatten(1))


def test_cli_says_when_the_legacy_exporter_wrote_the_file(tmp_path):
    r = runner.invoke(app, ["deploy", "tests.deploy.test_bundle:Branchy", "--out", str(tmp_path / "d"),
                            "--input-shape", "1x4", "--no-measure"])
    assert r.exit_code == 0, r.output
    assert "warning: the torch.export-based ONNX exporter failed on Branchy" in r.output
    assert "exporter: torchscript (opset 17); fallback: " in r.output
