"""Fusion: which chains fuse, and what fusing saves (closed forms)."""

from __future__ import annotations

import torch.nn as nn

from chipfit.cost import analyze, capture_torch
from tests.cost.nets import NETS


def test_conv_bn_relu_fuses_and_saves_the_intermediate_tensors():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    p = analyze(capture_torch(model, input_shape=(1, 8, 16, 16)))
    assert [lay.kinds for lay in p.layers_fused] == [["conv", "batch_norm", "relu"]]
    fu = p.fusion()
    act = 8 * 16 * 16 * 4  # one activation map, fp32 bytes
    bn_params = 4 * 8 * 4  # weight, bias, running mean, running var
    # unfused: conv writes, bn reads+writes, relu reads+writes; fused: only the final write
    assert fu["bytes_saved"] == 4 * act + bn_params
    assert p.total_for(True).macs == p.total_for(False).macs
    assert p.total_for(True).flops == p.total_for(False).flops


def test_residual_add_fuses_but_a_branching_tensor_does_not():
    p = analyze(capture_torch(NETS["resnet"][0]().eval(), input_shape=NETS["resnet"][1]))
    chains = p.fusion()["chains"]
    assert chains.get("conv+batch_norm+add+relu", 0) >= 2
    # the stem's maxpool output feeds two branches (conv1 and the downsample): it is never fused into
    assert all(lay.kinds[0] in ("conv", "linear") or len(lay.kinds) == 1 for lay in p.layers_fused)


def test_fused_peak_memory_never_exceeds_unfused():
    for cls, shape in NETS.values():
        p = analyze(capture_torch(cls().eval(), input_shape=shape))
        m = p.memory
        assert 0 < m["peak_activation_bytes_fused"] <= m["peak_activation_bytes_unfused"]
