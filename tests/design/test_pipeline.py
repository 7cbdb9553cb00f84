"""`chipfit design` end to end on a tiny plan: every stage runs and writes its files, the report is one
self-contained page with every figure, a run interrupted in its search and continued reaches the same network and
accuracy, a resumed run asked otherwise is refused, and a budget nothing meets is said with the smallest reached."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from chipfit.cli import app

runner = CliRunner()
TINY = ["--hw", "edge-npu", "--latency", "0.4ms", "--minutes", "5", "--supernet-epochs", "1", "--supernet-steps", "6",
        "--generations", "2", "--population", "3", "--epochs", "1", "--steps-per-epoch", "6", "--no-measure"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A small class-per-folder set of 28x28 grey images (3 classes told apart by brightness): the whole pipeline
    runs on it in seconds."""
    from PIL import Image

    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 110), ("test", 20)):
        for k in range(3):
            d = root / split / f"c{k}"
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray((rng.integers(0, 50, (28, 28)) + 90 * k).astype(np.uint8)).save(d / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def whole(tree, tmp_path_factory):
    TINY.extend(["--data", str(tree)])
    out = tmp_path_factory.mktemp("design") / "d"
    r = runner.invoke(app, ["design", *TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_every_stage_writes_its_files_and_the_report_is_self_contained(whole):
    from chipfit.design import STAGES
    from chipfit.design.summary import REQUIRED_FIGURES

    out, said = whole
    assert "report:" in said and "test accuracy" in said
    state = json.loads((out / "state.json").read_text())
    assert list(state["done"]) == list(STAGES)
    for f in ("search/candidates.jsonl", "search/chosen.json", "train/best.pt", "compress/compressed.pt",
              "compress/model.onnx", "deploy/manifest.json"):
        assert (out / f).is_file(), f
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", html) and "http" not in html
    embedded = re.findall(r'<figure data-name="([^"]+)"><img alt="[^"]*" src="data:image/png;base64,', html)
    assert set(REQUIRED_FIGURES) <= set(embedded)
    chosen = state["done"]["search"]["chosen"]
    assert next(iter(chosen["latency_s"].values())) <= 0.4e-3
    assert 0 < state["done"]["train"]["test_accuracy"] <= 1


def test_a_search_killed_part_way_continues_to_the_same_design(whole, tmp_path, monkeypatch):
    import chipfit.nas.run as run

    out = tmp_path / "d"
    real = run.make_evaluator
    calls = {"n": 0}

    def dying(*args, **kwargs):
        evaluate = real(*args, **kwargs)

        def ev(arch):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt("stopped")
            return evaluate(arch)
        return ev

    monkeypatch.setattr(run, "make_evaluator", dying)
    r = runner.invoke(app, ["design", *TINY, "--out", str(out)])
    assert r.exit_code == 130
    monkeypatch.setattr(run, "make_evaluator", real)
    state = json.loads((out / "state.json").read_text())
    assert "search" not in state["done"] and "supernet" in state["done"]
    r = runner.invoke(app, ["design", *TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    a = json.loads((whole[0] / "state.json").read_text())["done"]
    b = json.loads((out / "state.json").read_text())["done"]
    assert a["search"]["chosen"]["key"] == b["search"]["chosen"]["key"]
    assert a["train"]["test_accuracy"] == b["train"]["test_accuracy"]
    assert a["compress"]["ptq"]["int8_accuracy"] == b["compress"]["ptq"]["int8_accuracy"]


def test_mistakes_are_one_line_errors(whole, tmp_path):
    out, _ = whole
    cases = [
        (["design", "--hw", "edge-npu", "--out", str(tmp_path / "x")], "give a budget"),
        (["design", *TINY, "--latency", "0.5ms", "--out", str(out)], "asked otherwise (latency_budget_s"),
        (["design", *TINY, "--hw", "nosuchchip", "--out", str(tmp_path / "y")], "nosuchchip"),
        (["design", *TINY, "--latency", "1us", "--out", str(tmp_path / "z")], "smallest reached"),
    ]
    for args, said in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output, (args, r.output)
