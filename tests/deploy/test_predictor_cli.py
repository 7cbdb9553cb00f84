"""`chipfit predictor build|show` and `chipfit predict`, end to end on a seconds-long build."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chipfit.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("pred") / "p"
    res = runner.invoke(app, ["predictor", "build", "--out", str(out), "--minutes", "0.05", "--networks", "2"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_build_writes_a_text_predictor_and_shows_it(built):
    out, output = built
    manifest = json.loads((out / "predictor.json").read_text())
    assert manifest["environment"]["runtime"] == "ort" and manifest["build"]["samples"] > 0
    assert (out / "samples.jsonl").read_text().count("\n") == manifest["build"]["samples"]
    nets = [json.loads(line) for line in (out / "networks.jsonl").read_text().splitlines()]
    assert len(nets) == manifest["build"]["networks"] == 2 and all(n["measured_s"] > 0 for n in nets)
    assert all(n["nodes"] for n in nets) and sum(manifest["build"]["in_network_labels"].values()) > 0
    assert "kernel type" in output and "fusion read from the runtime" in output
    assert runner.invoke(app, ["predictor", "show", str(out)]).exit_code == 0


def test_build_refuses_to_overwrite_a_predictor(built):
    res = runner.invoke(app, ["predictor", "build", "--out", str(built[0]), "--minutes", "0.05"])
    assert res.exit_code == 2 and "holds a predictor already" in res.output


def test_refit_measures_nothing_and_fits_the_same_measurements_again(built):
    out = built[0]
    samples = (out / "samples.jsonl").read_text()
    res = runner.invoke(app, ["predictor", "build", "--out", str(out), "--refit", "--networks", "2"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "predictor.json").read_text())
    assert manifest["build"]["refit"] is True and manifest["build"]["networks"] == 2
    assert (out / "samples.jsonl").read_text() == samples  # nothing measured, nothing added


def test_refit_of_a_folder_without_measurements_is_one_line(tmp_path):
    res = runner.invoke(app, ["predictor", "build", "--out", str(tmp_path / "none"), "--refit"])
    assert res.exit_code == 2 and "nothing to refit" in res.output and "Traceback" not in res.output


def test_predict_prints_and_writes_a_predicted_estimate(built, tmp_path):
    res = runner.invoke(app, ["predict", "quadranet_s28", "--predictor", str(built[0]), "--json",
                              str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    est = json.loads((tmp_path / "p.json").read_text())
    assert est["source"] == "predicted" and est["latency_s"] > 0
    assert "predicted" in res.output


def test_predict_without_a_predictor_is_one_line(tmp_path):
    res = runner.invoke(app, ["predict", "quadranet_s28", "--predictor", str(tmp_path)])
    assert res.exit_code == 2 and "no predictor" in res.output and "Traceback" not in res.output


def test_predict_for_other_threads_is_refused(built):
    res = runner.invoke(app, ["predict", "quadranet_s28", "--predictor", str(built[0]), "--threads", "2"])
    assert res.exit_code == 2 and "built for 1 thread" in res.output
