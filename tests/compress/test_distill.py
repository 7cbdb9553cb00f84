"""Distillation: the KD term's closed form, and hooks that train adapters inside the training engine."""

from __future__ import annotations

import math

import pytest
import torch

from chipfit.compress import DistillConfig
from chipfit.compress.distill import distill_hooks, kd_loss
from chipfit.data import DataBundle, Split
from chipfit.models import create_model
from chipfit.train import TrainConfig, fit


def test_kd_loss_closed_form():
    s = torch.tensor([[1.0, 0.0]])
    assert kd_loss(s, s.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-7)
    t = torch.tensor([[0.0, 1.0]])
    p = torch.softmax(t / 2, 1)[0]
    q = torch.softmax(s / 2, 1)[0]
    expected = float((p * (p / q).log()).sum()) * 4
    assert kd_loss(s, t, 2.0).item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0 and not math.isnan(expected)


def _data(n=96) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 10
    x = torch.randint(0, 255, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    part = lambda a, b: Split(x[a:b], y[a:b])  # noqa: E731
    return DataBundle("toy", [str(i) for i in range(10)], part(0, 64), part(64, 80), part(80, 96), [0.5], [0.3])


@pytest.mark.parametrize("feature_weight", [0.0, 1.0])
def test_hooks_train_the_student_and_adapters(feature_weight):
    torch.manual_seed(0)
    student = create_model("quadranet_s28", num_classes=10, in_chans=1)
    teacher = create_model("convnext_s28", num_classes=10, in_chans=1).eval()
    hooks = distill_hooks(student, teacher, DistillConfig("unused", feature_weight=feature_weight),
                          torch.zeros(1, 1, 28, 28))
    assert (hooks.modules is not None) == (feature_weight > 0)
    before = None if hooks.modules is None else [p.detach().clone() for p in hooks.modules.parameters()]
    t_before = [p.detach().clone() for p in teacher.parameters()]
    fit(student, _data(), TrainConfig(epochs=1, batch_size=16, lr=1e-3, warmup_epochs=0, progress=False),
        hooks=hooks)
    assert all(torch.equal(a, b) for a, b in zip(t_before, teacher.parameters(), strict=True))  # teacher frozen
    if before is not None:
        assert any(not torch.equal(a, b) for a, b in zip(before, hooks.modules.parameters(), strict=True))
    hooks.close()  # the recorders come off both networks
    assert all(not s._forward_hooks for net in (student, teacher) for s in net.stages)
