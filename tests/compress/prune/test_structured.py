"""Channel pruning: shapes stay consistent, MACs fall, the network trains, the plan rebuilds it, and the channels
that carry nothing are exactly the ones removed (across residual adds, depthwise convs and quadratic branches)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import chipfit
from chipfit.compress.fold import fold_bn
from chipfit.compress.prune import apply_plan, prune_channels
from chipfit.compress.prune import layers as L
from chipfit.compress.prune.depgraph import channel_groups
from chipfit.layers import QuadraConv2d
from chipfit.models import create_model

ZOO = ["quadranet_s28", "mobilenetv2_s28", "shufflenetv2_s28", "convnext_s28", "hornet_s28", "swin_s28"]


@pytest.mark.parametrize("name", ZOO)
def test_channel_pruning_shrinks_trains_and_rebuilds(name):
    net = fold_bn(create_model(name, num_classes=10, in_chans=1).eval())
    x = torch.randn(2, 1, 28, 28)
    before = chipfit.profile(net, input_shape=(1, 1, 28, 28)).total
    net, plan = prune_channels(net, 0.5, x)
    after = chipfit.profile(net, input_shape=(1, 1, 28, 28)).total
    assert after.macs < 0.6 * before.macs and after.params < 0.6 * before.params
    assert net(x).shape == (2, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    net(x).sum().backward()
    opt.step()
    net.eval()
    fresh = fold_bn(create_model(name, num_classes=10, in_chans=1).eval())
    apply_plan(fresh, plan)
    fresh.load_state_dict(net.state_dict())  # shapes agree exactly
    torch.testing.assert_close(fresh(x), net(x))


def test_every_group_keeps_its_share():
    net = create_model("quadranet_s28", num_classes=10, in_chans=1).eval()
    x = torch.zeros(1, 1, 28, 28)
    widths = {g.name: len(g) for g in channel_groups(net, x)}
    _, plan = prune_channels(net, 0.3, x)
    assert {n: len(k) for n, k in plan["keep"].items()} == {n: round(w * 0.7) for n, w in widths.items()}
    assert {g.name: len(g) for g in channel_groups(net, x)} == {n: round(w * 0.7) for n, w in widths.items()}


@pytest.mark.parametrize("name", ["mobilenetv2_s28", "quadranet_s28"])
def test_hidden_groups_leave_the_residual_streams_whole(name):
    net = fold_bn(create_model(name, num_classes=10, in_chans=1).eval())
    x = torch.randn(2, 1, 28, 28)
    groups = channel_groups(net, x)
    ref = net(x)
    net, plan = prune_channels(net, 0.5, x, groups="hidden")
    for g in groups:
        assert len(plan["keep"][g.name]) == (len(g) if g.is_stream else round(len(g) * 0.5)), g.name
    assert {g.name: len(g) for g in channel_groups(net, x)} == {n: len(k) for n, k in plan["keep"].items()}
    assert net(x).shape == ref.shape
    fresh = fold_bn(create_model(name, num_classes=10, in_chans=1).eval())
    apply_plan(fresh, plan)
    fresh.load_state_dict(net.state_dict())
    torch.testing.assert_close(fresh(x), net(x))


def _kill_half(net: nn.Module, x: torch.Tensor) -> None:
    """Make every other channel of every group carry exactly zero: zero it where it is made (conv filter and bias,
    all three quadratic filters), where it passes (depthwise filters and biases, norm affines) and where it is read
    (so that its importance is zero, below every live channel's)."""
    with torch.no_grad():
        for g in channel_groups(net, x):
            for uses in g.classes[::2]:
                for layer, role, pos in uses:
                    m = net.get_submodule(layer)
                    for path, dim in L.slices(m)[role].tensors:
                        t = getattr(m, path)
                        if t is not None and not path.startswith("running"):
                            t.select(dim, pos).zero_()


def test_dead_channels_across_adds_and_depthwise_are_the_ones_removed():
    """MobileNetV2 with BN folded: residual streams, expansions with their depthwise convs and the head width."""
    net = fold_bn(create_model("mobilenetv2_s28", num_classes=10, in_chans=1).eval())
    x = torch.randn(3, 1, 28, 28)
    _kill_half(net, x)
    with torch.no_grad():
        ref = net(x)
        _, plan = prune_channels(net, 0.5, x)
        got = net(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert all(k == list(range(1, 2 * len(k), 2)) for k in plan["keep"].values() if len(k) > 1)


class _QuadResNet(nn.Module):
    """Quadratic layers around a residual add: a 1x1 quadratic conv opens the stream, a depthwise quadratic conv
    passes it, a second quadratic 1x1 adds to it; BatchNorm keeps channels independent (no LayerNorm statistics)."""

    def __init__(self):
        super().__init__()
        self.stem = QuadraConv2d(2, 8, 1)
        self.dw = QuadraConv2d(8, 8, 3, padding=1, groups=8)
        self.bn = nn.BatchNorm2d(8)
        self.expand = QuadraConv2d(8, 12, 1)
        self.project = nn.Conv2d(12, 8, 1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(torch.relu(self.expand(self.bn(self.dw(x)))))
        return self.head(x.mean((2, 3)))


def test_dead_quadratic_channels_are_the_ones_removed():
    net = _QuadResNet().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 2, 6, 6)
    groups = {g.name: len(g) for g in channel_groups(net, x)}
    assert groups == {"stem:out": 8, "expand:out": 12}
    _kill_half(net, x)
    with torch.no_grad():
        net.bn.running_mean[::2] = 0  # BN(0) = 0 needs a zero mean as well as a zero bias
        ref = net(x)
        prune_channels(net, 0.5, x)
        got = net(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert net.stem.weight_a.shape == (4, 2, 1, 1) and net.dw.groups == 4 and net.expand.weight_c.shape == (6, 4, 1, 1)
    assert net.project.weight.shape == (4, 6, 1, 1) and net.head.in_features == 4


def test_bad_input_is_a_clear_error():
    net = create_model("quadranet_s28", num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune_channels(net, 1.0)
    with pytest.raises(ValueError, match="older chipfit"):
        apply_plan(net, {"stages.0.0": 12})
    _, plan = prune_channels(create_model("convnext_s28", num_classes=10, in_chans=1), 0.5)
    with pytest.raises(ValueError, match="does not fit this network"):
        apply_plan(create_model("mobilenetv2_s28", num_classes=10, in_chans=1), plan)
    with pytest.raises(ValueError, match="example_input"):
        prune_channels(nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 2, 1)), 0.5)
    with pytest.raises(ValueError, match="no channel can be removed"):
        prune_channels(nn.Sequential(nn.Conv2d(1, 2, 1)), 0.5, torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="all, hidden"):
        prune_channels(net, 0.5, groups="streams")
