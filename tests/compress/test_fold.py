"""Folding BatchNorm is exact: folded eval output equals the unfolded one to float rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from chipfit.compress.fold import fold_bn
from chipfit.layers import QuadraConv2d
from chipfit.models import create_model


def _warm_bn(model: nn.Module, shape) -> None:
    """Non-trivial running statistics and affine parameters."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(shape) * 2 + 0.3)
    model.eval()


@pytest.mark.parametrize("name", ["mobilenetv2_s28", "shufflenetv2_s28"])
def test_zoo_folds_exactly(name):
    net = create_model(name, num_classes=10, in_chans=1)
    _warm_bn(net, (8, 1, 28, 28))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        ref = net(x)
        fold_bn(net)
        got = net(x)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 0
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [1, 4])
def test_quadratic_conv_and_plain_conv_fold(groups):
    net = nn.Sequential(QuadraConv2d(4, 8, 3, padding=1, groups=groups), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                        nn.Flatten(), nn.Linear(8 * 25, 3), nn.BatchNorm1d(3))
    torch.manual_seed(1)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(6, 4, 5, 5) + 1)
    net.eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        ref = net(x)
        fold_bn(net)
        got = net(x)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in net.modules())
    assert net[3].bias is not None  # a bias was created for the bias-free conv
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_bn_not_after_a_conv_is_left():
    net = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3))
    fold_bn(net)
    assert isinstance(net[1], nn.BatchNorm2d)
