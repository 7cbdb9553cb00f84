"""Fused deployment layers: followers ride on their conv, their maps leave memory traffic, their arithmetic stays."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import chipfit
from chipfit.api import profile
from chipfit.hw.sim import layers_from_profile, simulate


class _ConvBNReLU(nn.Module):
    def __init__(self, residual: bool):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        self.residual = residual

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return y + x if self.residual else y


@pytest.mark.parametrize("residual", [False, True])
def test_followers_fold_into_the_conv(residual):
    prof = profile(_ConvBNReLU(residual).eval(), input_shape=(1, 8, 6, 6))
    plain = layers_from_profile(prof, fused=False)
    fused = layers_from_profile(prof)
    assert [x.kind for x in plain] == ["conv", "norm", "eltwise"] + (["eltwise"] if residual else [])
    assert len(fused) == 1
    conv = fused[0]
    out = 8 * 6 * 6
    assert conv.fused[0].endswith("batch_norm")  # folded: no operations of its own
    # ReLU: one op per element; the residual add one more and it reads x, which the running map does not supply
    assert conv.fused_ops == (2 * out if residual else out)
    assert conv.fused_reads == (out if residual else 0)
    a, b = simulate(prof, "edge-npu", fused=False), simulate(prof, "edge-npu")
    assert b.total["macs"] == a.total["macs"]
    # what disappears: the BN's and ReLU's own reads and writes (8-bit elements); the residual operand stays
    saved = (out + 4 * 8) + out + out + out  # BN in + its 4 vectors (weight, bias, mean, var), BN out, ReLU in, out
    if residual:
        saved += out  # the add's output no longer written by a separate layer (its conv writes it instead)
        saved += 2 * out - out  # the add read both operands; fused it reads only x
    traffic = a.total["dram_read_bytes"] + a.total["dram_write_bytes"]
    fused_traffic = b.total["dram_read_bytes"] + b.total["dram_write_bytes"]
    assert traffic - fused_traffic == pytest.approx(saved)


@pytest.mark.parametrize("name", ["mobilenetv2_s28", "quadranet_s28", "shufflenetv2_s28", "swin_s28"])
def test_fusion_conserves_macs_and_never_costs_more(name):
    a, b = chipfit.simulate(name, "edge-npu", fused=False), chipfit.simulate(name, "edge-npu")
    assert b.total["macs"] == a.total["macs"]
    assert len(b.layers) < len(a.layers)
    assert b.total["dram_read_bytes"] + b.total["dram_write_bytes"] < a.total["dram_read_bytes"] + a.total[
        "dram_write_bytes"]
    assert b.total["energy_j"] < a.total["energy_j"] and b.total["cycles"] <= a.total["cycles"]


def test_fused_layers_batch_with_their_conv():
    prof = profile(_ConvBNReLU(True).eval(), input_shape=(1, 8, 6, 6))
    one, four = simulate(prof, "edge-npu"), simulate(prof, "edge-npu", batch=4)
    assert four.layers[0].detail["fused"] == one.layers[0].detail["fused"]
    assert four.total["macs"] == 4 * one.total["macs"]
    assert torch.tensor(four.total["dram_read_bytes"]) > one.total["dram_read_bytes"]


def test_the_old_spellings_give_the_same_simulation():
    """fuse= and bits= are deprecated names of fused= and precision=: same figures, and a warning."""
    prof = profile(_ConvBNReLU(True).eval(), input_shape=(1, 8, 6, 6))
    with pytest.warns(DeprecationWarning):
        old = simulate(prof, "edge-npu", bits=8, fuse=True)
    new = simulate(prof, "edge-npu", precision="int8", fused=True)
    assert old.total == new.total and old.precision.name == new.precision.name == "int8"
    with pytest.warns(DeprecationWarning):
        old = simulate(prof, arch="edge-npu", bits=16, weight_bits=4)
    new = simulate(prof, "edge-npu", precision="w4a16")
    assert old.total == new.total
