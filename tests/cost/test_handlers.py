"""Closed-form checks of every cost handler, through the PyTorch front end (meta capture)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.cost import Precision, analyze, capture_torch
from chipfit.cost.handlers import ACT_FLOPS, TABLE, attention_macs, conv_macs, matmul_macs


class Fn(nn.Module):
    def __init__(self, fn, *mods):
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(mods)

    def forward(self, *xs):
        return self.fn(self, *xs)


def only(module: nn.Module, shape, dtype="fp32"):
    """The profile of ``module`` and its single non-view layer (unfused)."""
    p = analyze(capture_torch(module, input_shape=shape), dtype, fused=False)
    assert not p.unsupported
    return p


def one(module, shape, dtype="fp32"):
    p = only(module, shape, dtype)
    assert len(p.layers) == 1, [lay.name for lay in p.layers]
    return p.layers[0]


@pytest.mark.parametrize(
    "cin,cout,k,stride,pad,dil,groups,hw",
    [
        (3, 8, 3, 1, 1, 1, 1, 16),  # plain
        (8, 16, 3, 2, 1, 1, 2, 15),  # grouped, strided, odd size
        (16, 16, 5, 1, 2, 1, 16, 12),  # depthwise
        (4, 6, 3, 1, 2, 2, 1, 10),  # dilated
        (6, 6, 1, 1, 0, 1, 1, 7),  # pointwise
    ],
)
def test_conv_macs_closed_form(cin, cout, k, stride, pad, dil, groups, hw):
    conv = nn.Conv2d(cin, cout, k, stride, pad, dil, groups)
    lay = one(conv, (2, cin, hw, hw))
    ho = (hw + 2 * pad - dil * (k - 1) - 1) // stride + 1
    macs = 2 * cout * ho * ho * (cin // groups) * k * k
    assert lay.output_shape == (2, cout, ho, ho)
    assert lay.cost.macs == macs
    assert lay.cost.flops == 2 * macs
    assert lay.cost.params == cout * cin // groups * k * k + cout
    # bytes at fp32: input + weight + bias read, output written
    assert lay.cost.bytes_read == 4 * (2 * cin * hw * hw + cout * cin // groups * k * k + cout)
    assert lay.cost.bytes_written == 4 * 2 * cout * ho * ho


def test_conv_transpose_macs():
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    lay = one(conv, (1, 4, 5, 5))
    assert lay.output_shape == (1, 6, 10, 10)
    assert lay.cost.macs == 4 * 5 * 5 * 6 * 9  # every input element scatters into C_out x k x k outputs
    assert conv_macs((1, 4, 5, 5), (4, 6, 3, 3), (1, 6, 10, 10), 1, transposed=True) == 4 * 25 * 54


def test_conv1d_and_3d():
    assert one(nn.Conv1d(3, 5, 3), (1, 3, 10)).cost.macs == 5 * 8 * 3 * 3
    assert one(nn.Conv3d(2, 4, 3), (1, 2, 5, 5, 5)).cost.macs == 4 * 27 * 2 * 27


def test_precision_scales_bytes_not_macs():
    conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    f32, i8 = one(conv, (1, 8, 8, 8)), one(conv, (1, 8, 8, 8), "int8")
    assert f32.cost.macs == i8.cost.macs
    assert f32.cost.bytes == 4 * i8.cost.bytes
    w4a8 = one(conv, (1, 8, 8, 8), "w4a8")
    assert w4a8.cost.weight_bytes == 8 * 8 * 9 / 2
    assert w4a8.cost.bytes_read == 8 * 64 + 8 * 8 * 9 / 2


@pytest.mark.parametrize("shape", [(5, 12), (2, 7, 12), (2, 3, 4, 12)])
def test_linear(shape):
    lay = one(nn.Linear(12, 9), shape)
    rows = 1
    for d in shape[:-1]:
        rows *= d
    assert lay.op_type == "linear"
    assert lay.cost.macs == rows * 12 * 9
    assert lay.cost.params == 12 * 9 + 9


def test_matmul_and_bmm():
    mm = Fn(lambda s, x: x @ x.transpose(-1, -2))
    lay = one(mm, (3, 5, 7))
    assert lay.op_type == "matmul"
    assert lay.cost.macs == 3 * 5 * 7 * 5
    assert matmul_macs((2, 1, 4, 6), (3, 6, 5)) == 2 * 3 * 4 * 6 * 5  # broadcast batch


def test_attention_is_one_fused_op():
    attn = Fn(lambda s, q: F.scaled_dot_product_attention(q, q, q))
    lay = one(attn, (2, 3, 10, 8))
    assert lay.op_type == "attention"
    assert lay.cost.macs == attention_macs((2, 3, 10, 8), (2, 3, 10, 8), (2, 3, 10, 8)) == 2 * 3 * 10 * 10 * 16
    scores = 2 * 3 * 10 * 10
    assert lay.cost.flops == 2 * lay.cost.macs + scores * (1 + 5)
    # reads q, k, v (the same tensor three times), writes only the output: no score matrix in memory
    assert lay.cost.bytes_written == 4 * 2 * 3 * 10 * 8


@pytest.mark.parametrize(
    "mod,per_elem",
    [(nn.BatchNorm2d(6), 2), (nn.GroupNorm(2, 6), 8), (Fn(lambda s, x: F.layer_norm(x, x.shape[-1:])), 8)],
)
def test_norms(mod, per_elem):
    lay = one(mod, (2, 6, 5, 5))
    assert lay.op_type == "norm"
    assert lay.cost.flops == per_elem * 2 * 6 * 25
    assert lay.cost.macs == 0


@pytest.mark.parametrize("act", ["relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "leaky_relu"])
def test_activations_are_not_free(act):
    fn = {"relu6": F.relu6, "leaky_relu": F.leaky_relu}.get(act, getattr(F, act, None) or getattr(torch, act))
    lay = one(Fn(lambda s, x: fn(x)), (2, 3, 4, 5))
    key = "relu6" if act == "relu6" else act
    assert lay.op_type == "act"
    assert lay.cost.flops == ACT_FLOPS.get(key, ACT_FLOPS["hardtanh"]) * 120 > 0


def test_eltwise_and_softmax():
    p = only(Fn(lambda s, x: (x + x) * 2.0), (2, 10))
    assert [lay.op_type for lay in p.layers] == ["eltwise", "eltwise"]
    assert p.total.flops == 2 * 20
    sm = one(Fn(lambda s, x: x.softmax(-1)), (4, 10))
    assert sm.op_type == "softmax" and sm.cost.flops == 5 * 40


def test_pooling():
    mp = one(nn.MaxPool2d(3, 2, 1), (1, 4, 8, 8))
    assert mp.cost.flops == 8 * 4 * 4 * 4  # k*k - 1 comparisons per output
    assert mp.cost.bytes_written == 4 * 4 * 4 * 4  # indices are not written at inference
    ap = one(nn.AvgPool2d(2), (1, 4, 8, 8))
    assert ap.cost.flops == 4 * 4 * 4 * 4
    gp = one(nn.AdaptiveAvgPool2d(1), (1, 4, 8, 8))
    assert gp.op_type in ("pool", "reduce") and gp.cost.flops == 4 * 64 + 4  # torch lowers it to a mean


def test_interpolation():
    bil = one(Fn(lambda s, x: F.interpolate(x, scale_factor=2, mode="bilinear")), (1, 2, 4, 4))
    assert bil.cost.flops == 8 * 2 * 8 * 8
    near = one(Fn(lambda s, x: F.interpolate(x, scale_factor=2, mode="nearest")), (1, 2, 4, 4))
    assert near.cost.flops == 0 and near.cost.bytes == 4 * (32 + 128)


def test_views_move_no_bytes_copies_do():
    views = only(Fn(lambda s, x: x.view(2, -1).transpose(0, 1).reshape(-1, 2)[1:] + 1), (2, 3, 4))
    assert [lay.op_type for lay in views.layers] == ["eltwise"]  # reshape/transpose/slice cost nothing
    cat = one(Fn(lambda s, x: torch.cat([x, x], 1)), (2, 3, 4))
    assert cat.op_type == "copy" and cat.cost.macs == 0 and cat.cost.flops == 0
    assert cat.cost.bytes == 4 * (24 + 48)  # a kernel reads each distinct tensor once
    cont = one(Fn(lambda s, x: x.permute(0, 2, 1).contiguous()), (2, 3, 4))
    assert cont.op_type == "copy" and cont.cost.bytes == 4 * 48


def test_shared_weights_count_once():
    lin = nn.Linear(4, 4)
    p = only(Fn(lambda s, x: s.mods[0](s.mods[0](x)), lin), (1, 4))
    assert p.total.params == 20
    assert sum(lay.cost.params for lay in p.layers) == 40  # each use reads them


def test_every_registered_kind_has_a_category():
    cats = {"conv", "linear", "matmul", "attention", "norm", "act", "eltwise", "pool", "softmax", "reduce", "copy",
            "interp", "view"}
    assert {k.op_type for k in TABLE.values()} <= cats


def test_precision_parsing():
    assert Precision.parse("int8").act_bits == 8
    assert Precision.parse("w4a8").compute == "int8"
    assert Precision.parse("binary").weight_bits == 1
    with pytest.raises(ValueError, match="unknown precision"):
        Precision.parse("fp13")
