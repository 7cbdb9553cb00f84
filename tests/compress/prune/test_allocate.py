"""Sensitivity allocation of channel pruning: per-layer MACs from the cost engine agree with a closed form, the MAC
model agrees with the profiler on pruned networks, the search reaches the uniform cut's MACs, and it cuts dead
channels before live ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import chipfit
from chipfit.compress.prune import prune_channels
from chipfit.compress.prune.allocate import MacModel, dropped_channels, layer_macs
from chipfit.compress.prune.depgraph import channel_groups
from chipfit.layers import QuadraConv2d, QuadraLinear
from chipfit.models import create_model, list_models

X = torch.zeros(1, 1, 28, 28)


def _closed_form_macs(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Each conv/linear layer (plain or quadratic): one multiply-add per weight of a filter for every output value of
    that filter (all of them: windowed attention runs its windows as a batch)."""
    macs: dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, QuadraConv2d, QuadraLinear)):
            def hook(mod, _inp, out, name=name):
                weights = sum(p.numel() for n, p in mod.named_parameters(recurse=False) if n.startswith("weight"))
                channels = out.shape[1] if isinstance(mod, (nn.Conv2d, QuadraConv2d)) else out.shape[-1]
                macs[name] = macs.get(name, 0) + out.numel() // channels * weights
            handles.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return macs


@pytest.mark.parametrize("name", [n for n in list_models() if n.endswith("_s28")])
def test_layer_macs_from_the_cost_engine_match_the_closed_form(name):
    net = create_model(name, num_classes=10, in_chans=1).eval()
    assert layer_macs(net, X) == _closed_form_macs(net, X)


@pytest.mark.parametrize("name", ["mobilenetv2_s28", "convnext_s28"])
def test_mac_model_matches_the_profiler_after_a_cut(name):
    net = create_model(name, num_classes=10, in_chans=1).eval()
    assert sum(layer_macs(net, X).values()) == chipfit.profile(net, input_shape=(1, 1, 28, 28)).total.macs
    macs = MacModel(net, X)
    groups = channel_groups(net, X)
    _, plan = prune_channels(net, 0.4, X)  # in place: the groups and MAC model above describe the intact network
    dropped: dict = {}
    for g in groups:
        for k, v in dropped_channels(g, plan["keep"][g.name]).items():
            dropped[k] = dropped.get(k, 0) + v
    assert macs(dropped) == pytest.approx(chipfit.profile(net, input_shape=(1, 1, 28, 28)).total.macs, rel=1e-9)


class _Planted(nn.Module):
    """Two hidden widths: 8 live channels, then 16 of which the last 8 are dead (zero filters, BN scale, BN shift)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, 10)
        with torch.no_grad():
            self.body[3].weight[8:] = 0
            self.body[3].bias[8:] = 0
            self.body[4].weight[8:] = 0
            self.body[4].bias[8:] = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def _planted() -> nn.Module:
    return _Planted().eval()


def test_sensitivity_cuts_dead_channels_first_at_the_uniform_macs():
    x = torch.randn(64, 1, 28, 28)
    batches = list(x.split(32))
    uniform, plan_u = prune_channels(_planted(), 0.25, x)
    net, plan = prune_channels(_planted(), 0.25, x, allocation="sensitivity", batches=batches)
    assert net(x).shape == (64, 10)
    first, second = sorted(plan["keep"], key=lambda n: len(plan_u["keep"][n]))  # the 8-wide group, the 16-wide one
    assert plan["fractions"][second] >= 0.5 > plan["fractions"][first]  # the dead half goes, the live width stays
    assert set(plan["keep"][second]) <= set(range(8))
    macs = chipfit.profile(net, input_shape=(1, 1, 28, 28)).total.macs
    assert macs <= chipfit.profile(uniform, input_shape=(1, 1, 28, 28)).total.macs
    with torch.no_grad():  # the dead channels carried nothing: the outputs do not move
        torch.testing.assert_close(net(x), _planted()(x), atol=1e-5, rtol=1e-5)


def test_sensitivity_needs_images():
    with pytest.raises(ValueError, match="calibration images"):
        prune_channels(_planted(), 0.25, X, allocation="sensitivity")
    with pytest.raises(ValueError, match="uniform, sensitivity"):
        prune_channels(_planted(), 0.25, X, allocation="best")
