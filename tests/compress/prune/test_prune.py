"""Pruning: the AGP schedule's closed form, magnitude pruning hits its sparsity, channel pruning keeps shapes
consistent, cuts MACs, rebuilds from its plan, and removes exactly the channels that carry nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import chipfit
from chipfit.compress.fold import fold_bn
from chipfit.compress.prune import AGPSchedule, apply_plan, prune_channels, prune_magnitude, sparsity
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


@pytest.mark.parametrize("name", ["quadranet_s28", "mobilenetv2_s28", "convnext_s28", "hornet_s28", "swin_s28"])
def test_channel_pruning_shrinks_and_rebuilds(name):
    net = create_model(name, num_classes=10, in_chans=1).eval()
    fold_bn(net)
    x = torch.randn(2, 1, 28, 28)
    before = chipfit.profile(net, input_shape=(1, 1, 28, 28)).total
    net, plan = prune_channels(net, 0.5, x)
    after = chipfit.profile(net, input_shape=(1, 1, 28, 28)).total
    assert after.macs < before.macs and after.params < before.params
    assert net(x).shape == (2, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    net(x).sum().backward()
    opt.step()
    fresh = fold_bn(create_model(name, num_classes=10, in_chans=1).eval())
    apply_plan(fresh, plan)
    fresh.load_state_dict(net.state_dict())  # shapes agree exactly
    with pytest.raises(ValueError, match="no prunable hidden channels"):
        prune_channels(create_model("shufflenetv2_s28", num_classes=10, in_chans=1), 0.5)


def test_channels_that_carry_nothing_are_the_ones_removed():
    """Zero half the hidden filters of every MLP (and the matching columns): pruning 50% removes exactly those, so
    the output does not change."""
    net = create_model("quadranet_s28", num_classes=10, in_chans=1).eval()
    blocks = [m for m in net.modules() if isinstance(m, MetaBlock)]
    with torch.no_grad():
        for b in blocks:
            h = b.pw1.out_channels
            dead = torch.arange(0, h, 2)
            b.pw1.weight[dead] = 0
            b.pw1.bias[dead] = 0  # GELU(0) = 0: nothing reaches pw2
            b.pw2.weight[:, dead] = 0
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        ref = net(x)
        prune_channels(net, 0.5)
        got = net(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert all(b.pw1.out_channels == (b.pw2.in_channels) for b in blocks)
