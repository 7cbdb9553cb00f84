"""`chipfit search` end to end on a tiny image tree: the files it writes, a resumed search, an infeasible budget, the
gradient strategy, and the messages for bad options."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chipfit.cli import app
from chipfit.models import ModelConfig, build_model

runner = CliRunner()
FAST = ["--supernet-epochs", "1", "--supernet-steps", "2", "--batch-size", "8", "--n-val", "8", "--population", "2"]


def _search(tree, out, *args):
    return runner.invoke(app, ["search", "quadranet_s28", "--data", str(tree), "--out", str(out), *FAST, *args])


def test_search_writes_front_configs_and_plots_and_resumes(png_tree, tmp_path, one_thread):
    out = tmp_path / "s"
    r = _search(png_tree, out, "--hw", "edge-npu", "--latency", "1ms", "--hw", "cortex-a76", "--latency", "-",
                "--params", "2M", "--trials", "4")
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "pareto.json").read_text())
    assert [t["label"] for t in rep["targets"]] == ["edge-npu/simulator", "cortex-a76/roofline"]
    assert len(rep["candidates"]) == 4
    front = [c for c in rep["candidates"] if c["pareto"]]
    assert front and all(c["feasible"] for c in front)
    for c in rep["candidates"]:
        assert c["feasible"] == (c["latency_s"]["edge-npu/simulator"] <= 1e-3 and c["params"] <= 2e6)
        assert 0 <= c["accuracy_estimate"] <= 1
    # the front's files are ModelConfig JSON that build the network the candidate describes
    files = sorted((out / "front").glob("*.json"))
    assert len(files) == len(front)
    cfg = ModelConfig.from_dict(json.loads(files[0].read_text()))
    net = build_model(cfg)
    best = max(front, key=lambda c: c["accuracy_estimate"])
    assert sum(p.numel() for p in net.parameters()) == best["params"]
    assert (out / "front_edge-npu_simulator.png").stat().st_size > 1000
    assert {z["name"] for z in rep["zoo"]} >= {"quadranet_s28", "mobilenetv2_s28"}
    assert rep["stats"]["latency_evals_per_s"] > 0
    # the same command asking for more trials continues the study and reuses the trained supernet
    r = _search(png_tree, out, "--hw", "edge-npu", "--latency", "1ms", "--hw", "cortex-a76", "--latency", "-",
                "--params", "2M", "--trials", "6")
    assert r.exit_code == 0, r.output
    rep2 = json.loads((out / "pareto.json").read_text())
    assert len(rep2["candidates"]) == 6
    assert [c["key"] for c in rep2["candidates"][:4]] == [c["key"] for c in rep["candidates"]]


def test_infeasible_budget_names_the_constraint_and_the_smallest_value(png_tree, tmp_path, one_thread):
    r = _search(png_tree, tmp_path / "s", "--hw", "edge-npu", "--source", "simulator", "--latency", "1us",
                "--trials", "3")
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert "edge-npu/simulator latency_s <= 1 us" in text and "the smallest reached is" in text


def test_gradient_strategy(png_tree, tmp_path, one_thread):
    out = tmp_path / "g"
    r = _search(png_tree, out, "--strategy", "gradient", "--hw", "edge-npu", "--source", "roofline", "--latency",
                "0.3ms", "--grad-steps", "3", "--widths", "16,32,64,128")
    assert r.exit_code in (0, 2), r.output  # 2: the point found breaks the budget (said on stderr)
    rep = json.loads((out / "pareto.json").read_text())
    assert len(rep["candidates"]) == 1
    assert rep["candidates"][0]["describe"]["stages"][0]["width"] == 16
    assert len(rep["gradient"]["probs"]) == 4
    lat = rep["candidates"][0]["latency_s"]["edge-npu/roofline"]
    assert rep["gradient"]["table_latency_s"]["edge-npu/roofline"] == pytest.approx(lat, rel=1e-9)


@pytest.mark.parametrize(("args", "message"), [
    (["--latency", "2"], "has no unit"),
    (["--hw", "edge-npu", "--hw", "a100", "--latency", "1ms", "--latency", "2ms", "--latency", "3ms"],
     "one per --hw"),
    (["--strategy", "annealing"], "--strategy"),
    (["--strategy", "gradient"], "needs a latency budget"),
    (["--params", "lots"], "--params"),
    (["--hw", "no-such-chip"], "no-such-chip"),
    (["--widths", "3,4", "--strategy", "gradient", "--latency", "1ms"], "--widths"),
])
def test_bad_options_say_what_is_wrong(png_tree, tmp_path, args, message):
    r = _search(png_tree, tmp_path / "bad", *args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split())
    assert "Traceback" not in r.output


def test_a_space_for_another_image_size_is_refused(png_tree, tmp_path):
    r = runner.invoke(app, ["search", "quadranet", "--data", str(png_tree), "--out", str(tmp_path / "x"), *FAST])
    assert r.exit_code == 2 and "224 px" in r.output


def test_supernet_only_then_search_reuses_it(png_tree, tmp_path, one_thread):
    out = tmp_path / "so"
    r = _search(png_tree, out, "--supernet-only")
    assert r.exit_code == 0, r.output
    assert (out / "supernet" / "last.pt").is_file() and not (out / "pareto.json").exists()
    epochs = (out / "supernet" / "metrics.jsonl").read_text().count("\n")
    r = _search(png_tree, out, "--hw", "edge-npu", "--trials", "2")
    assert r.exit_code == 0, r.output
    assert (out / "supernet" / "metrics.jsonl").read_text().count("\n") == epochs  # not trained again
    assert json.loads((out / "pareto.json").read_text())["stats"]["candidates"] == 2


def test_describe_prints_the_size(tmp_path):
    r = runner.invoke(app, ["search", "mbconv_s28", "--describe", "--sample", "2"])
    assert r.exit_code == 0
    from chipfit.nas import load_space

    assert f"{load_space('mbconv_s28').size():.4g} architectures" in r.output
    assert r.output.count('"stages"') == 2
