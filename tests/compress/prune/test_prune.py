"""Unstructured pruning: the AGP schedule's closed form, magnitude pruning hits its sparsity and keeps the largest
weights (channel pruning: test_structured.py and test_depgraph.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from chipfit.compress.prune import AGPSchedule, prunable, prune_magnitude, sparsity
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


def test_global_scope_uses_one_threshold():
    small, big = torch.tensor([1.0, -2.0, 3.0, 4.0]), torch.tensor([[10.0, -20.0]])
    prune_magnitude([("a", small), ("b", big)], 0.5, scope="global")  # the three smallest of six go
    assert small.tolist() == [0.0, 0.0, 0.0, 4.0] and big.tolist() == [[10.0, -20.0]]
    small, big = torch.tensor([1.0, -2.0, 3.0, 4.0]), torch.tensor([[10.0, -20.0]])
    prune_magnitude([("a", small), ("b", big)], 0.5, scope="layer")
    assert small.tolist() == [0.0, 0.0, 3.0, 4.0] and big.tolist() == [[0.0, -20.0]]
    with pytest.raises(ValueError, match="scope"):
        prune_magnitude([("a", small)], 0.5, scope="net")
    net = create_model("mobilenetv2_s28", num_classes=10, in_chans=1)
    AGPSchedule(net, 0.6, fraction=0.0, scope="global").step(1, 1)
    s = sparsity(net)
    assert s["total"] == pytest.approx(0.6, abs=0.01)
    assert max(v for k, v in s.items() if k != "total") - min(s.values()) > 0.1  # layers differ under one threshold


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitudes_are_those_of_the_folded_network(scope):
    """Pruning with BatchNorm in place and folding afterwards zeroes the same weights as pruning the folded network."""
    import copy

    from chipfit.compress.fold import fold_bn

    torch.manual_seed(0)
    net = create_model("mobilenetv2_s28", num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(-2, 2)
                m.running_var.uniform_(0.01, 10)
    folded_first = fold_bn(copy.deepcopy(net))
    AGPSchedule(folded_first, 0.5, fraction=0.0, scope=scope).step(1, 1)
    folded_after = copy.deepcopy(net)
    AGPSchedule(folded_after, 0.5, fraction=0.0, scope=scope).step(1, 1)
    fold_bn(folded_after)
    zeros = [(n, w == 0) for n, w in prunable(folded_first)]
    assert all(torch.equal(z, w == 0) for (_, z), (_, w) in zip(zeros, prunable(folded_after), strict=True))
    raw = copy.deepcopy(net)  # the raw weights alone would rank differently
    prune_magnitude(prunable(raw), 0.5, scope)
    assert any(not torch.equal(z, w == 0) for (_, z), (_, w) in zip(zeros, prunable(fold_bn(raw)), strict=True))
