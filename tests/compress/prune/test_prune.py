"""Unstructured pruning: the AGP schedule's closed form, magnitude pruning hits its sparsity and keeps the largest
weights (channel pruning: test_structured.py and test_depgraph.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from chipfit.compress.prune import AGPSchedule, prune_magnitude, sparsity
from chipfit.models import create_model
from chipfit.models.blocks import MetaBlock


def test_agp_schedule_closed_form():
    net = create_model("convnext_s28", num_classes=10, in_chans=1)
    agp = AGPSchedule(net, 0.8, fraction=0.5)
    assert agp.target(0, 100) == pytest.approx(0.0)
    assert agp.target(25, 100) == pytest.approx(0.8 - 0.8 * 0.5**3)
    assert agp.target(50, 100) == agp.target(99, 100) == 0.8
    assert AGPSchedule(net, 0.8, fraction=0.0).target(0, 100) == 0.8


@pytest.mark.parametrize("amount", [0.3, 0.7])
def test_magnitude_pruning_reaches_its_sparsity_and_keeps_the_largest(amount):
    net = create_model("quadranet_s28", num_classes=10, in_chans=1)
    w = [m for m in net.modules() if isinstance(m, MetaBlock)][2].pw1.weight
    big = w.detach().abs().max()
    AGPSchedule(net, amount, fraction=0.0).step(1, 1)
    s = sparsity(net)
    assert s["total"] == pytest.approx(amount, abs=0.01)
    assert w.detach().abs().max() == big  # the largest weight survives
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert (first.weight != 0).all()  # the first layer is never pruned
    prune_magnitude([("w", torch.tensor([3.0, -1.0, 2.0, 0.5]))], 0.5)  # runs on a bare tensor list too
