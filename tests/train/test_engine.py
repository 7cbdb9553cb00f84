"""The training engine: loss falls, runs are reproducible, resume after a kill is exact, checkpoints are safe, two
processes keep identical weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from chipfit.data import DataBundle, Split
from chipfit.train import CheckpointError, TrainConfig, fit, load_checkpoint, save_checkpoint
from chipfit.train.engine import TrainHooks, lr_at, param_groups

ROOT = Path(__file__).parents[2]


def toy_data(n=512, seed=0) -> DataBundle:
    """Two classes told apart by the brightness of the left half: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randint(0, 100, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[y == 1, :, :, :4] += 120
    split = lambda a, b: Split(x[a:b], y[a:b])  # noqa: E731
    return DataBundle("toy", ["dark", "bright"], split(0, 384), split(384, 448), split(448, 512), [0.3], [0.3])


def toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 2))


CFG = TrainConfig(epochs=3, batch_size=32, lr=1e-2, warmup_epochs=0.5, progress=False, seed=1)


def test_loss_falls_and_accuracy_rises():
    r = fit(toy_model(), toy_data(), CFG)
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert r.test_accuracy > 0.9


def test_same_seed_same_curve():
    a = fit(toy_model(), toy_data(), CFG)
    b = fit(toy_model(), toy_data(), CFG)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_hooks_add_a_loss_see_every_step_and_train_extra_modules(tmp_path):
    steps, extra = [], nn.Linear(2, 2)
    before = extra.weight.detach().clone()
    hooks = TrainHooks(extra_loss=lambda x, logits, y: 0.1 * extra(logits).pow(2).mean(),
                       after_step=lambda step, total: steps.append((step, total)), modules=extra)
    r = fit(toy_model(), toy_data(), TrainConfig(**{**CFG.to_dict(), "out": str(tmp_path)}), hooks=hooks)
    total = 3 * (384 // 32)
    assert steps == [(i, total) for i in range(1, total + 1)]
    assert not torch.equal(extra.weight, before)  # the extra module's parameters were optimised
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["hook_modules"]["weight"], extra.weight)
    plain = fit(toy_model(), toy_data(), CFG)
    assert r.history[0]["train_loss"] != plain.history[0]["train_loss"]  # the extra term entered the loss


def test_weight_decay_skips_norms_and_biases():
    groups = param_groups(toy_model(), 0.05)
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    assert groups[1]["weight_decay"] == 0


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 1.0, 0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False)) and lrs[-1] == pytest.approx(0.01, abs=1e-3)


def test_checkpoint_is_atomic_and_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(2)}, "model_spec": "{}"})
    assert load_checkpoint(path)["model"]["w"].sum() == 2
    assert not list(tmp_path.glob(".c.pt.*"))  # no temporary left behind
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_spec": "{}", "obj": np.random.default_rng()}, evil)  # needs unpickling
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(evil)


def test_mismatched_config_is_refused(tmp_path):
    from chipfit.models import create_model

    data = _fmnist_like()
    cfg = TrainConfig(epochs=1, batch_size=16, progress=False, out=str(tmp_path), max_steps_per_epoch=1,
                      model_name="quadranet_s28")
    fit(create_model("quadranet_s28"), data, cfg)
    other = TrainConfig(**{**cfg.to_dict(), "resume": True, "model_name": "convnext_s28", "epochs": 2})
    with pytest.raises(CheckpointError, match="different architecture"):
        fit(create_model("convnext_s28"), data, other)


def test_existing_run_is_not_overwritten(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, out=str(tmp_path))
    fit(toy_model(), toy_data(), cfg)
    with pytest.raises(FileExistsError, match="--resume"):
        fit(toy_model(), toy_data(), cfg)


def test_a_folder_with_other_files_is_not_overwritten_and_force_starts_afresh(tmp_path):
    """A folder holding best.pt and report.json but no last.pt (a run whose last.pt was removed, say) is refused
    too: nothing is written over unless --force says so."""
    (tmp_path / "best.pt").write_bytes(b"precious")
    (tmp_path / "report.json").write_text("{}")
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False, out=str(tmp_path))
    with pytest.raises(FileExistsError, match=r"best.pt, report.json.*--force"):
        fit(toy_model(), toy_data(), cfg)
    assert (tmp_path / "best.pt").read_bytes() == b"precious"
    r = fit(toy_model(), toy_data(), TrainConfig(**{**cfg.to_dict(), "force": True}))
    assert r.out == tmp_path and (tmp_path / "last.pt").is_file() and load_checkpoint(tmp_path / "best.pt")


@pytest.mark.parametrize("change,said", [({"lr": 5e-2}, "--lr 0.01 -> 0.05"), ({"batch_size": 16}, "--batch-size"),
                                         ({"epochs": 5}, "--epochs 3 -> 5"), ({"seed": 2}, "--seed")])
def test_resume_with_other_options_is_refused_naming_them(tmp_path, change, said):
    cfg = TrainConfig(**{**CFG.to_dict(), "out": str(tmp_path), "max_steps_per_epoch": 2})
    fit(toy_model(), toy_data(), cfg)
    other = TrainConfig(**{**cfg.to_dict(), "resume": True, **change})
    with pytest.raises(ValueError, match="started with other options") as e:
        fit(toy_model(), toy_data(), other)
    assert said in str(e.value)
    fit(toy_model(), toy_data(), TrainConfig(**{**cfg.to_dict(), "resume": True}))  # the same options continue


def test_resume_on_other_data_is_refused(tmp_path):
    cfg = TrainConfig(**{**CFG.to_dict(), "out": str(tmp_path), "max_steps_per_epoch": 2})
    fit(toy_model(), toy_data(), cfg)
    again = TrainConfig(**{**cfg.to_dict(), "resume": True})
    other = toy_data(seed=5)
    other.mean, other.std = [0.4], [0.25]  # what load_data measures on other images
    with pytest.raises(ValueError, match="--data: other images"):
        fit(toy_model(), other, again)
    renamed = toy_data()
    renamed.classes = ["low", "high"]
    with pytest.raises(ValueError, match="--data: other classes"):
        fit(toy_model(), renamed, again)


@pytest.mark.parametrize("field,value,said", [("ema_decay", 5.0, "--ema 5.0: must be a decay in (0, 1)"),
                                              ("ema_decay", 1.0, "--ema"), ("lr", float("nan"), "--lr"),
                                              ("lr", 1e30, "--lr"), ("warmup_epochs", 20.0, "--warmup-epochs"),
                                              ("label_smoothing", 1.0, "--label-smoothing")])
def test_values_that_would_train_to_nonsense_are_refused(field, value, said):
    with pytest.raises(ValueError) as e:
        TrainConfig(**{**CFG.to_dict(), field: value})
    assert said in str(e.value)


def test_a_diverging_loss_stops_with_a_message(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32, lr=10.0, clip_grad=None, progress=False, warmup_epochs=0.0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.fill_(3e38)  # logits overflow to inf on the first step: the loss is not a number
    with pytest.raises(FloatingPointError, match="loss became"):
        fit(model, toy_data(), cfg)


def _fmnist_like(n=64) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 10
    s = Split(x, y)
    return DataBundle("fake", [str(i) for i in range(10)], s, s, s, [0.5], [0.3])


RUNNER = """
import sys, torch
sys.path.insert(0, {root!r})
from tests.train.test_engine import toy_data, toy_model, CFG
from chipfit.train import TrainConfig, fit
torch.set_num_threads(1)
cfg = TrainConfig(**{{**CFG.to_dict(), "epochs": 6, "out": {out!r}, "resume": {resume}, "batch_size": 8}})
r = fit(toy_model(), toy_data(), cfg)
torch.save(r.model.state_dict(), {out!r} + "/final.pt")
"""


def _start(out: Path, resume: bool) -> subprocess.Popen:
    code = RUNNER.format(root=str(ROOT), out=str(out), resume=resume)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def _wait_for_epoch(out: Path, epochs: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t = time.time()
    while time.time() - t < timeout:
        m = out / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= epochs:
            return
        if proc.poll() is not None:
            raise AssertionError("the run ended before it could be interrupted")
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_resume_after_interruption_is_exact(tmp_path, how):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref = _start(ref_dir, False)
    assert ref.wait(180) == 0
    proc = _start(run_dir, False)
    _wait_for_epoch(run_dir, 1, proc)
    t = time.time()
    _wait_for_epoch(run_dir, 2, proc)
    time.sleep((time.time() - t) / 2)  # half an epoch on this machine: somewhere inside epoch 3
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    proc.wait(60)
    assert not (run_dir / "final.pt").exists() or how == "ctrl-c"
    state = load_checkpoint(run_dir / "last.pt")
    assert state["epoch"] < 6
    again = _start(run_dir, True)
    assert again.wait(180) == 0
    a, b = torch.load(ref_dir / "final.pt"), torch.load(run_dir / "final.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == list(range(1, 7))


@pytest.fixture(scope="module")
def uninterrupted():
    return fit(toy_model(), toy_data(), CFG)


@pytest.mark.parametrize("at_step", [5, 12, 13])  # inside epoch 1, its last step, the first of epoch 2
def test_stop_signal_saves_the_position_and_resume_is_exact(tmp_path, at_step, uninterrupted):
    # deterministic in-process form of the test above: the stop signal arrives during a known step
    ref = uninterrupted
    cfg = TrainConfig(**{**CFG.to_dict(), "out": str(tmp_path)})
    hooks = TrainHooks(after_step=lambda step, total: os.kill(os.getpid(), signal.SIGINT) if step == at_step else None)
    r = fit(toy_model(), toy_data(), cfg, hooks)
    assert r.interrupted and r.test_accuracy is None
    state = load_checkpoint(tmp_path / "last.pt")
    per_epoch = 384 // 32
    assert (state["step"], state["epoch"], state["batch"]) == (at_step, (at_step - 1) // per_epoch,
                                                               (at_step - 1) % per_epoch + 1)
    again = fit(toy_model(), toy_data(), TrainConfig(**{**cfg.to_dict(), "resume": True}))
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    assert [h["val_loss"] for h in again.history] == [h["val_loss"] for h in ref.history]
    after = state["epoch"] + 1  # the interrupted epoch's train loss averages only the batches run after the resume
    assert [h["train_loss"] for h in again.history[after:]] == [h["train_loss"] for h in ref.history[after:]]


DIST = """
import os, sys, torch
sys.path.insert(0, {root!r})
from tests.train.test_engine import toy_data, toy_model, CFG
from chipfit.train import TrainConfig, fit
torch.set_num_threads(1)
r = fit(toy_model(), toy_data(), TrainConfig(**{{**CFG.to_dict(), "epochs": 2, "batch_size": 16}}))
torch.save(r.model.state_dict(), {out!r} + f"/rank{{os.environ['RANK']}}.pt")
"""


def test_two_processes_keep_identical_weights(tmp_path):
    script = tmp_path / "dist.py"
    script.write_text(DIST.format(root=str(ROOT), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    res = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", str(script)], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    trained = toy_model().state_dict()
    assert any(not torch.equal(a[k], trained[k]) for k in a)  # it trained
    for k in a:
        assert torch.equal(a[k], b[k]), k
