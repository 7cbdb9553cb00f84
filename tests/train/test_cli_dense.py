"""`chipfit train --task segment|detect` and `chipfit models --task` through typer's runner, on a user's own image +
mask folder made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from chipfit.cli import app

runner = CliRunner()
pytest.importorskip("pycocotools")


@pytest.fixture
def masks(tmp_path):
    """12 grey 64x64 images, each with a bright square (class 1) and a mid-grey one (class 2), their index masks."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("bright\ngrey\n")
    for i in range(12):
        img = rng.integers(0, 40, (64, 64)).astype(np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        for value, cls in ((230, 1), (130, 2)):
            y, x, s = *rng.integers(0, 40, 2), int(rng.integers(12, 24))
            img[y:y + s, x:x + s] = value
            mask[y:y + s, x:x + s] = cls
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


@pytest.mark.parametrize(("task", "model", "score"), [("segment", "bisenet_mobilenetv2_s", "miou"),
                                                     ("detect", "fcos_mobilenetv2_s", "map50")])
def test_train_a_dense_network_on_a_mask_folder(masks, tmp_path, task, model, score):
    out = tmp_path / task
    r = runner.invoke(app, ["train", model, "--task", task, "--data", str(masks), "--epochs", "1", "--batch-size",
                            "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert ("test mIoU" if task == "segment" else "test mAP@0.5") in r.output
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == task and report["score"] == score and report["input_shape"] == [1, 1, 64, 64]
    assert 0 <= report["test_score"] <= 1 and (out / "predictions.png").is_file() and (out / "best.pt").is_file()
    # the checkpoint is a dense network that the other verbs load by its config
    r = runner.invoke(app, ["profile", str(out), "--hw", "jetson-tx2"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output


def test_dense_mistakes_are_one_line_errors(masks, tmp_path):
    for args, said in (
        (["train", "fastscnn_s", "--task", "detect", "--data", str(masks), "--out", str(tmp_path / "a")],
         "is a segment network"),
        (["train", "quadranet_s28", "--task", "segment", "--data", str(masks), "--out", str(tmp_path / "b")],
         "is a classify network"),
        (["train", "fastscnn_s", "--task", "pose", "--data", str(masks), "--out", str(tmp_path / "c")],
         "--task 'pose'"),
        (["train", "fastscnn_s", "--task", "segment", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "d")],
         "neither"),
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output, (args, r.output)


def test_models_lists_networks_by_task():
    r = runner.invoke(app, ["models", "--task", "detect", "--no-counts"])
    assert r.exit_code == 0 and "fcos_quadranet_s" in r.output and "bisenet" not in r.output
    r = runner.invoke(app, ["models", "--task", "segment", "--no-counts"])
    assert r.exit_code == 0 and "fastscnn_s" in r.output and "quadranet_s28 " not in r.output
