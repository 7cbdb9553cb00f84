"""Simulator layers from a profile (one per graph node, quadratic convs merged, MACs from the cost records) and
from SCALE-Sim topology CSVs."""

from __future__ import annotations

import pytest
import torch.nn as nn

from chipfit.api import profile
from chipfit.hw.sim.topology import read_topology
from chipfit.hw.sim.workload import layers_from_profile
from chipfit.layers.quadratic import QuadraConv2d


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.quad = QuadraConv2d(8, 16, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.quad(self.dw(self.conv(x))))).flatten(1))


@pytest.fixture(scope="module")
def tiny_profile():
    return profile(Tiny().eval(), input_shape=(1, 3, 16, 16))


def test_layers_from_profile(tiny_profile, fused=False):
    layers = layers_from_profile(tiny_profile, fused=False)
    kinds = [x.kind for x in layers]
    assert kinds.count("quadconv") == 1 and kinds.count("dwconv") == 1 and kinds.count("gemm") == 1
    conv = next(x for x in layers if x.kind == "conv")
    assert (conv.in_h, conv.out_h, conv.stride, conv.padding) == (16, 8, (2, 2), (1, 1))
    quad = next(x for x in layers if x.kind == "quadconv")
    # three 3x3 convs of 8 -> 16 channels on 8x8: their MACs together, one layer instead of 3 convs + mul + add
    assert quad.macs == 3 * 8 * 8 * 16 * 3 * 3 * 8
    conv_macs = sum(n.macs for n in tiny_profile.graph.nodes if n.kind == "conv")
    assert sum(x.macs for x in layers if x.kind != "gemm") == conv_macs
    assert next(x for x in layers if x.kind == "gemm").macs == 16 * 10


def test_topology_errors_name_row_and_column(tmp_path):
    p = tmp_path / "t.csv"
    head = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    p.write_text(head + "ok, 8, 8, 3, 3, 4, 8, 1,\nshort, 8, 8, 3, 3,\n")
    with pytest.raises(ValueError, match=r"t\.csv: row 3 \(layer 'short'\): expected 8 columns .* missing "
                                         r"Channels, Num Filter, Strides"):
        read_topology(p)
    p.write_text(head + "bad, 8, eight, 3, 3, 4, 8, 1,\n")
    with pytest.raises(ValueError, match=r"row 2 \(layer 'bad'\), column 'IFMAP Width': 'eight' is not a whole"):
        read_topology(p)
    p.write_text(head + "big, 2, 8, 3, 3, 4, 8, 1,\n")
    with pytest.raises(ValueError, match=r"column 'Filter Height': the filter \(3\) is larger than the input \(2\)"):
        read_topology(p)
    p.write_text("name, a, b,\n")
    with pytest.raises(ValueError, match="row 1: the header must be"):
        read_topology(p)


def test_topology_gemm_dp_and_sparsity(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("Layer, M, N, K,\nfc, 4, 10, 32,\n")
    g = read_topology(p)[0]
    assert (g.kind, g.m, g.n, g.k, g.macs) == ("gemm", 4, 10, 32, 4 * 10 * 32)
    p.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"
                 " Sparsity,\nconvDP, 8, 8, 3, 3, 16, 1, 1,\nsp, 8, 8, 3, 3, 16, 8, 1, 2:4,\n")
    dp, sp = read_topology(p)
    assert (dp.kind, dp.groups, dp.macs) == ("dwconv", 16, 6 * 6 * 9 * 16)  # SCALE-Sim: 16 one-channel layers
    assert sp.sparsity == "2:4"


class ThreeConvs(nn.Module):
    """The quadratic convolution written out: three convolutions of one input, a product and a sum."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = (nn.Conv2d(4, 6, 3, padding=1) for _ in range(3))

    def forward(self, x):
        return self.a(x) * self.b(x) + self.c(x)


def test_three_separate_convs_are_one_quadconv():
    from chipfit.hw.sim import simulate

    prof = profile(ThreeConvs().eval(), input_shape=(1, 4, 8, 8))
    layers = layers_from_profile(prof, fused=False)
    assert [x.kind for x in layers] == ["quadconv"]
    assert layers[0].macs == 3 * 8 * 8 * 6 * 9 * 4
    res = simulate(prof, "edge-npu", fused=False)  # the profile's graph, not captured again
    assert res.total["macs"] == layers[0].macs and res.model == "ThreeConvs"


@pytest.mark.parametrize("name", ["quadranet_s28", "mobilenetv2_s28", "shufflenetv2_s28", "swin_s28", "hornet_s28"])
def test_macs_come_from_the_records_and_agree_with_the_mapping(name):
    """Every array layer's MACs are the cost records' count; the GEMM the layer maps onto the array has the same."""
    prof = profile(name)
    for fused in (False, True):
        layers = layers_from_profile(prof, fused=fused)
        assert sum(x.macs for x in layers) == prof.total.macs
        for x in layers:
            if x.on_array:
                assert x.record_macs is not None
                g, m, k, n = x.gemm()
                assert x.macs == g * m * k * n, x.name
