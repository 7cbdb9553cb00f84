"""`chipfit train`, `chipfit eval` and `chipfit models` through typer's runner, on a tiny image tree made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from chipfit.cli import app

runner = CliRunner()


@pytest.fixture
def tree(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for k, cls in enumerate(("dark", "bright")):
            d = tmp_path / "data" / split / cls
            d.mkdir(parents=True)
            for i in range(8):
                Image.fromarray((rng.integers(0, 60, (28, 28)) + 150 * k).astype(np.uint8)).save(d / f"{i}.png")
    return tmp_path


def test_train_then_eval_then_profile_the_checkpoint(tree):
    out = tree / "run"
    r = runner.invoke(app, ["train", "quadranet_s28", "--data", str(tree / "data"), "--epochs", "2",
                            "--batch-size", "4", "--out", str(out), "--seed", "3"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert {"test_accuracy", "params", "macs", "train_seconds", "model"} <= set(report)
    assert 0 <= report["test_accuracy"] <= 1 and report["model"] == "quadranet_s28" and report["macs"] > 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert (out / "confusion.png").stat().st_size > 5000 and (out / "best.pt").is_file()
    r = runner.invoke(app, ["eval", str(out), "--data", str(tree / "data"), "--split", "val"])
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "bright" in r.output
    r = runner.invoke(app, ["profile", str(out / "best.pt"), "--hw", "jetson-tx2", "--precision", "fp16"])
    assert r.exit_code == 0, r.output
    assert "totals" in r.output


def test_train_takes_the_model_first_or_as_the_old_option(tree):
    r = runner.invoke(app, ["train", "--data", str(tree / "data"), "--out", str(tree / "run")])
    assert r.exit_code == 2 and "give the model" in r.output
    r = runner.invoke(app, ["train", "quadranet_s28", "--model", "mobilenetv2_s28", "--data", str(tree / "data"),
                            "--out", str(tree / "run")])
    assert r.exit_code == 2 and "two models given" in r.output


def test_train_refuses_to_overwrite_and_names_the_way_out(tree):
    args = ["train", "--model", "quadranet_s28", "--data", str(tree / "data"), "--epochs", "1", "--batch-size", "4",
            "--out", str(tree / "run")]
    assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "--resume" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "quadranet_s29"], "unknown model 'quadranet_s29'"),
        (["--data", "/nonexistent/place"], "neither 'fashion-mnist' nor an existing folder"),
        (["--model", "quadranet36_t"], "cannot take"),  # a 224x224 network on 28x28 images
    ],
)
def test_train_bad_input(tree, args, message):
    base = {"--model": "quadranet_s28", "--data": str(tree / "data"), "--out": str(tree / "run")}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    r = runner.invoke(app, ["train", *[x for kv in base.items() for x in kv], "--epochs", "1", "--batch-size", "4"])
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split())


@pytest.mark.parametrize("args,message", [
    (["--ema", "5"], "--ema 5.0: must be a decay in (0, 1)"),
    (["--crop-pad", "100"], "--crop-pad 100: at most 7 for 28x28 images"),
    (["--lr", "1e30"], "--lr 1e+30: must be a learning rate"),
])
def test_train_refuses_options_that_would_train_to_nonsense(tree, args, message):
    r = runner.invoke(app, ["train", "quadranet_s28", "--data", str(tree / "data"), "--out", str(tree / "run"), *args])
    assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
    assert not (tree / "run").exists()  # refused before anything was written


def test_the_same_seed_gives_the_same_run_from_the_first_step(tree):
    """The network is built after seeding: three runs from names give the same first-epoch loss, to the bit."""
    from chipfit.api import train
    from chipfit.train import TrainConfig

    def loss(seed: int) -> float:
        cfg = TrainConfig(epochs=1, batch_size=4, progress=False, seed=seed, max_steps_per_epoch=3)
        return train("quadranet_s28", str(tree / "data"), cfg)[0].history[0]["train_loss"]

    runs = [loss(0) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert loss(1) != runs[0]


def test_resume_with_another_lr_is_refused(tree):
    base = ["train", "quadranet_s28", "--data", str(tree / "data"), "--epochs", "1", "--batch-size", "4",
            "--out", str(tree / "run")]
    assert runner.invoke(app, base).exit_code == 0
    r = runner.invoke(app, [*base, "--resume", "--lr", "0.01"])
    assert r.exit_code == 2 and "--lr 0.002 -> 0.01" in r.output


def test_a_zero_byte_checkpoint_is_one_clean_message(tmp_path):
    empty = tmp_path / "best.pt"
    empty.write_bytes(b"")
    for args in (["eval", str(empty)], ["profile", str(empty)]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output, r.output


def test_models_lists_the_zoo():
    r = runner.invoke(app, ["models", "--family", "quadranet", "--no-counts"])
    assert r.exit_code == 0 and "quadranet36_t" in r.output and "quadranet_s28" in r.output
    r = runner.invoke(app, ["models", "--family", "nosuch"])
    assert r.exit_code == 2
