"""The segmentation and detection tasks in the training engine: a short run lowers the loss, resuming continues it
exactly, a network of the wrong kind or size is refused, and the run's report and pictures are written."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from chipfit.models import create_model
from chipfit.train import TrainConfig, TrainHooks, fit
from chipfit.train.dense import DetectTask, SegmentTask, make_task

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def scenes():
    from chipfit.data.dense import load_dense

    try:
        return {t: load_dense("fmnist-scenes", t, n_train=96, n_test=32, canvas=64, cache=False)
                for t in ("segment", "detect")}
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")


def _net(task: str, data):
    torch.manual_seed(0)
    name = "bisenet_quadranet_s" if task == "segment" else "fcos_quadranet_s"
    return create_model(name, num_classes=data.num_classes, in_chans=data.in_chans, input_size=data.image_size)


def _cfg(**kw):
    base = dict(epochs=3, batch_size=16, lr=3e-3, warmup_epochs=0.0, progress=False, max_steps_per_epoch=5, seed=0)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_short_run_lowers_the_loss(scenes, task):
    data = scenes[task]
    model = _net(task, data)
    t = make_task(task)
    t.check_fits(model, data)
    before = t.evaluate(model, data, "val")
    res = fit(model, data, _cfg(), task=make_task(task))
    after = t.evaluate(res.model, data, "val")
    assert after["loss"] < 0.8 * before["loss"], (before["loss"], after["loss"])
    assert res.score == ("miou" if task == "segment" else "map50")
    assert res.test_metrics is not None and res.test_accuracy == pytest.approx(res.test_metrics[res.score])
    key = "val_miou" if task == "segment" else "val_map50"
    assert all(key in h and "train_loss" in h for h in res.history)


def test_stop_mid_run_and_resume_reaches_the_same_weights(scenes, tmp_path):
    data = scenes["detect"]
    ref = fit(_net("detect", data), data, _cfg(), task=DetectTask())
    cfg = _cfg(out=str(tmp_path))
    stop = TrainHooks(after_step=lambda step, total: os.kill(os.getpid(), signal.SIGINT) if step == 7 else None)
    cut = fit(_net("detect", data), data, cfg, stop, task=DetectTask())
    assert cut.interrupted and cut.test_accuracy is None
    again = fit(_net("detect", data), data, TrainConfig(**{**cfg.to_dict(), "resume": True}), task=DetectTask())
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    assert [h["val_map50"] for h in again.history] == [h["val_map50"] for h in ref.history]
    assert again.test_accuracy == ref.test_accuracy


def test_wrong_networks_are_refused(scenes):
    seg, det = scenes["segment"], scenes["detect"]
    classifier = create_model("quadranet_s28", num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match="segmentation of .* needs logits"):
        SegmentTask().check_fits(classifier, seg)
    with pytest.raises(ValueError, match="not a detector"):
        DetectTask().check_fits(classifier, det)
    wrong_k = create_model("bisenet_quadranet_s", num_classes=3, in_chans=1, input_size=seg.image_size)
    with pytest.raises(ValueError, match="num_classes=10"):
        SegmentTask().check_fits(wrong_k, seg)
    with pytest.raises(ValueError, match="has no masks"):
        SegmentTask().check_fits(_net("segment", det), det)
    with pytest.raises(ValueError, match="unknown task"):
        make_task("pose")


def test_api_writes_the_dense_report(tmp_path):
    from chipfit.api import train_dense

    cfg = _cfg(epochs=1, out=str(tmp_path / "seg"))
    try:
        res, report = train_dense("fastscnn_s", "fmnist-scenes", cfg, task="segment",
                                  data_options={"n_train": 96, "n_test": 32, "cache": False})
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    out = tmp_path / "seg"
    saved = json.loads((out / "report.json").read_text())
    assert saved["task"] == "segment" and saved["score"] == "miou"
    assert 0 <= saved["test"]["miou"] <= 1 and saved["macs"] > 0 and saved["test_images"] == 32
    assert len(json.loads((out / "per_image.json").read_text())["per_image"]) == 32
    for png in ("predictions.png", "per_image.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="is a segment network; --task detect needs one of: .*fcos_quadranet_s"):
        train_dense("fastscnn_s", "fmnist-scenes", _cfg(out=str(tmp_path / "x")), task="detect",
                    data_options={"n_train": 96, "n_test": 32, "cache": False})
