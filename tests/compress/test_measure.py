"""measure(): storage closed forms, counts from the cost stage, accuracy only with data."""

from __future__ import annotations

import torch
import torch.nn as nn

from chipfit.compress import CompressConfig, QuantConfig, measure, size_bytes
from chipfit.compress.measure import INDEX_BITS, accuracy, weight_sparsity


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def test_size_bytes_closed_form():
    net = _net()
    weights = 8 * 9 + 8 * 8 * 9 + 8 * 2
    others = 8 + 8 + 8 + 2 + 8  # conv biases, BN weight and bias, linear bias (BN buffers are not parameters)
    assert size_bytes(net) == 4 * (weights + others)
    assert size_bytes(net, QuantConfig.from_name("int8")) == weights + 4 * others
    assert size_bytes(net, QuantConfig.from_name("int4")) == weights // 2 + 4 * others
    assert size_bytes(net, QuantConfig.from_name("binary")) == weights // 8 + 4 * others
    assert size_bytes(net, QuantConfig.from_name("fp16")) == 2 * (weights + others)
    with torch.no_grad():  # a mostly-zero tensor is stored as values + indices when that is smaller
        net[3].weight[:, :7] = 0
    nnz = 8 * 1 * 9
    sparse = nnz * (32 + INDEX_BITS) / 8
    assert size_bytes(net) == 4 * (weights - 8 * 8 * 9 + others) + sparse
    assert weight_sparsity(net) == (8 * 7 * 9, weights)


def test_counts_are_closed_form_and_accuracy_needs_data():
    net = _net().eval()
    res = measure(net, CompressConfig(), None, (1, 1, 8, 8))
    # a MAC is one multiply-add: each output element of a conv/linear takes one per weight of its filter
    conv_linear = 64 * 8 * 9 + 64 * 8 * 8 * 9 + 8 * 2
    assert res["dense_macs"] >= conv_linear and res["macs"] == res["dense_macs"]
    assert res["params"] == sum(p.numel() for p in net.parameters())
    assert res["accuracy"] is None and accuracy(net, None) is None
    assert res["bits"] == res["weight_bits"] == 32 and res["weight_sparsity"] == 0.0
    assert res["latency_fused_s"] <= res["latency_s"] and res["energy_fused_j"] < res["energy_j"]
    assert not net.training
