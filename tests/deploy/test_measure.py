"""measure: the protocol (fresh processes, warm-up, raw samples, statistics, load checks) in ONNX Runtime, PyTorch
and OpenVINO on a tiny model, its record and its errors; `chipfit measure` through typer's runner."""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from typer.testing import CliRunner

from chipfit.cli import app
from chipfit.deploy import Measurement, measure

measure_module = importlib.import_module("chipfit.deploy.measure")  # the package's `measure` is the function

runner = CliRunner()
FIELDS = {"runtime", "runtime_version", "model", "input_shape", "threads", "processes", "repeats", "warmup",
          "samples_s", "process_medians_s", "median_s", "spread", "sigma", "load_before", "load_after", "cpu", "cores",
          "chipfit_version", "when", "warnings", "settings"}


def tiny_onnx(path, batch: int | str = 1):
    """x (batch, 4) -> relu(x @ I): two nodes, microseconds to run."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], np.eye(4, dtype=np.float32).ravel().tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny(tmp_path):
    return tiny_onnx(tmp_path / "tiny.onnx")


@pytest.fixture
def quiet_machine(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))


def test_ort_runs_fresh_processes_and_keeps_every_sample(tiny, quiet_machine, monkeypatch):
    calls = []
    real = measure_module.run_process

    def counting(args, **kw):
        calls.append(args)
        return real(args, **kw)

    monkeypatch.setattr(measure_module, "run_process", counting)
    seen = []
    m = measure(tiny, processes=2, repeats=4, warmup=1, progress=lambda done, total: seen.append((done, total)))
    assert len(calls) == 2 and all(a[0] == sys.executable and a[2].endswith("_measure_worker.py") for a in calls)
    assert json.loads(calls[0][3])["threads"] == 1 and json.loads(calls[0][3])["warmup"] == 1
    assert seen == [(0, 2), (1, 2), (2, 2)]
    assert len(m.samples_s) == 2 and all(len(s) == 4 for s in m.samples_s)
    assert all(x > 0 for s in m.samples_s for x in s)
    assert m.process_medians_s == [statistics.median(s) for s in m.samples_s]
    meds = m.process_medians_s
    assert m.median_s == pytest.approx(statistics.median(meds))
    assert m.spread == pytest.approx((max(meds) - min(meds)) / statistics.median(meds))
    assert m.sigma == pytest.approx(statistics.pstdev(meds) / statistics.fmean(meds))
    import onnxruntime

    assert (m.runtime, m.runtime_version, m.input_shape, m.threads) == ("ort", onnxruntime.__version__, (1, 4), 1)
    assert m.settings["intra_op_num_threads"] == 1 and m.settings["inter_op_num_threads"] == 1
    assert m.settings["execution_mode"] == "sequential"
    assert m.cores == os.cpu_count() and m.cpu and m.load_before == 0.0 and m.load_after == 0.0
    assert not [w for w in m.warnings if "busy" in w]
    d = json.loads(json.dumps(m.to_dict()))
    assert set(d) == FIELDS
    assert Measurement.from_dict(d) == m


def test_estimate_is_the_common_record_with_source_measured(tiny, quiet_machine):
    m = measure(tiny, processes=2, repeats=2, warmup=0)
    e = m.estimate()
    assert (e.source, e.target, e.model, e.precision, e.latency_s, e.energy_j) == \
        ("measured", "host", "tiny", "fp32", m.median_s, None)
    assert e.layers == () and e.extra["runtime"] == "ort"
    assert e.extra["spread"] == m.spread and e.extra["sigma"] == m.sigma
    assert any("2 processes x 2 timed runs" in n for n in e.notes)
    assert m.estimate(target="laptop", model="net").target == "laptop"


def test_an_input_shape_sets_dynamic_dimensions_and_is_asked_for_when_missing(tmp_path, quiet_machine):
    path = tiny_onnx(tmp_path / "dyn.onnx", batch="N")
    with pytest.raises(ValueError, match="input_shape"):
        measure(path, processes=1, repeats=1, warmup=0)
    assert measure(path, processes=1, repeats=1, warmup=0, input_shape=(3, 4)).input_shape == (3, 4)


def test_the_torch_runtime_runs_a_torch_export_file(tmp_path, quiet_machine):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()).eval()
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 6, 6),)), path)
    m = measure(path, runtime="torch", processes=2, repeats=2, warmup=1)
    assert m.runtime_version == torch.__version__ and m.input_shape == (1, 1, 6, 6)
    assert [len(s) for s in m.samples_s] == [2, 2] and m.settings["num_threads"] == 1


def test_the_openvino_runtime_runs_onnx_and_its_own_xml(tiny, tmp_path, quiet_machine):
    ov = pytest.importorskip("openvino")
    m = measure(tiny, runtime="openvino", processes=2, repeats=2, warmup=1, threads=2)
    assert m.runtime_version == ov.get_version() and m.settings["INFERENCE_NUM_THREADS"] == 2
    assert [len(s) for s in m.samples_s] == [2, 2]
    xml = tmp_path / "tiny.xml"
    ov.save_model(ov.convert_model(str(tiny)), str(xml))
    assert measure(xml, runtime="openvino", processes=1, repeats=1, warmup=0).input_shape == (1, 4)


def test_without_openvino_the_message_says_how_to_install_it(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    with pytest.raises(ValueError) as e:
        measure(tiny, runtime="openvino")
    assert str(e.value) == "OpenVINO is not installed: pip install 'chipfit[openvino]'"


def test_a_busy_machine_is_recorded_as_a_warning(tiny, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    m = measure(tiny, processes=1, repeats=1, warmup=0)
    busy = [w for w in m.warnings if w.startswith("machine busy: load 9.00")]
    assert busy and "figures may be inflated" in busy[0] and f"on {os.cpu_count()} cores" in busy[0]
    assert m.load_before == 9.0 and m.estimate().notes[-len(m.warnings):] == tuple(m.warnings)


def test_a_worker_that_fails_names_the_runtime_the_file_and_its_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ValueError) as e:
        measure(bad, processes=1, repeats=1)
    text = str(e.value)
    assert "ort worker" in text and str(bad) in text and "exit code 1" in text
    assert "Traceback" not in text and "| " in text  # the worker's own last line, not our traceback


@pytest.mark.parametrize("kwargs,message", [
    ({"runtime": "tflite"}, "runtime must be one of"),
    ({"runtime": "torch"}, "runs a .pt2 file"),
    ({"processes": 0}, "processes must be an integer >= 1"),
    ({"repeats": 0}, "repeats must be"),
    ({"warmup": -1}, "warmup must be"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"input_shape": (1, 0)}, "input_shape"),
    ({"runner": "echo {model}"}, "remote runtime"),
    ({"runtime": "remote"}, "needs a runner"),
])
def test_bad_options_are_refused_before_anything_runs(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure(tiny, **kwargs)


def test_a_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        measure(tmp_path / "none.onnx")


def test_cli_measures_an_onnx_file_and_writes_the_record(tiny, tmp_path, quiet_machine):
    out = tmp_path / "out.json"
    r = runner.invoke(app, ["measure", str(tiny), "--json", str(out), "--processes", "2", "--repeats", "3"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.replace("│", " ").split())
    assert "median" in text and "spread" in text and "per process" in text and "2 processes x 3 timed runs" in text
    d = json.loads(out.read_text())
    assert set(d) == FIELDS and d["model"] == str(tiny) and [len(s) for s in d["samples_s"]] == [3, 3]


def test_cli_exports_a_chipfit_model_spec(tmp_path, quiet_machine):
    out = tmp_path / "m.json"
    spec = "tests.compress.quant.test_modules:small_net"
    r = runner.invoke(app, ["measure", spec, "--input-shape", "1x1x8x8", "--processes", "1", "--repeats", "2",
                            "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["model"] == spec and d["settings"]["exported_to"] == "onnx" and d["input_shape"] == [1, 1, 8, 8]


@pytest.mark.parametrize("args,message", [
    (["missing.onnx"], "no such file"),
    (["{tiny}", "--runtime", "tflite"], "--runtime must be one of"),
    (["{tiny}", "--runtime", "remote"], "needs --runner"),
    (["{tiny}", "--parse", "x(1)"], "are for --runtime remote"),
    (["{tiny}", "--input-shape", "1xa"], "not of the form"),
])
def test_cli_user_errors_are_one_line_and_exit_2(tiny, tmp_path, args, message):
    r = runner.invoke(app, ["measure", *[a.format(tiny=tiny) for a in args]])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output
