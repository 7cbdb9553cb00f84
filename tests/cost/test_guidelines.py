"""G1-G4 on networks built to trip (or not trip) each guideline."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from chipfit.cost import analyze, capture_torch
from chipfit.cost.guidelines import check, g1_mac_bound


@pytest.mark.parametrize("c1,c2", [(64, 64), (32, 128), (128, 16), (7, 300)])
def test_g1_bound_holds_with_equality_iff_equal_channels(c1, c2):
    mac, bound = g1_mac_bound(14, 14, c1, c2)
    assert mac >= bound - 1e-6
    assert math.isclose(mac, bound) == (c1 == c2)


def test_g1_flags_unequal_1x1_convs_only():
    eq = nn.Sequential(nn.Conv2d(32, 32, 1), nn.Conv2d(32, 32, 1))
    uneq = nn.Sequential(nn.Conv2d(16, 192, 1), nn.Conv2d(192, 16, 1))
    g_eq = check(analyze(capture_torch(eq, input_shape=(1, 32, 28, 28))))
    g_un = check(analyze(capture_torch(uneq, input_shape=(1, 16, 28, 28))))
    assert g_eq["G1"]["flagged"] == 0 and all(math.isclose(r["ratio"], 1) for r in g_eq["G1"]["convs"])
    assert g_un["G1"]["flagged"] == 2 and any(w.startswith("G1") for w in g_un["warnings"])


def test_g2_depthwise_moves_more_bytes_per_flop():
    dw = nn.Conv2d(64, 64, 3, padding=1, groups=64)
    g = check(analyze(capture_torch(dw, input_shape=(1, 64, 28, 28))))
    r = g["G2"]["convs"][0]
    assert r["depthwise"] and r["groups"] == 64
    assert r["ratio"] > 10  # per FLOP, a depthwise conv moves tens of times the bytes of a dense one


def test_g3_finds_serial_chains_of_small_ops():
    class Fragmented(nn.Module):
        def forward(self, x):
            for _ in range(6):
                x = torch.sigmoid(x) * 2 + 1
            return x

    g = check(analyze(capture_torch(Fragmented(), input_shape=(1, 8, 8, 8))))
    assert g["G3"]["longest_small_chain"] == 18
    assert g["G3"]["serial_fraction"] == 1.0
    assert any(w.startswith("G3") for w in g["warnings"])


def test_g4_eltwise_share_drops_after_fusion():
    model = nn.Sequential(nn.Conv2d(16, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU())
    g = check(analyze(capture_torch(model, input_shape=(1, 16, 32, 32))))["G4"]
    assert g["eltwise_share_unfused"] > 0.2
    assert g["eltwise_share_fused"] == 0.0
