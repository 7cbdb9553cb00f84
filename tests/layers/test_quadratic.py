"""Quadratic layers: gradients of the hand-derived backward against autograd, and what backward keeps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from chipfit.layers import QuadraConv2d, QuadraLinear, quadra_conv2d

CASES = [
    # cin, cout, kernel, stride, padding, dilation, groups, bias
    (4, 4, 3, 1, 1, 1, 4, True),  # depthwise
    (4, 6, 3, 2, 1, 1, 2, True),  # grouped, strided
    (3, 5, (1, 3), 1, 0, 1, 1, True),  # full, rectangular kernel
    (4, 4, 3, 1, 2, 2, 1, True),  # dilated
    (4, 4, 3, 1, 1, 1, 1, False),  # no bias
]


def _layer(case, memory_efficient=True):
    cin, cout, k, s, p, d, g, bias = case
    torch.manual_seed(0)
    return QuadraConv2d(cin, cout, k, s, p, d, g, bias, memory_efficient).double()


@pytest.mark.parametrize("case", CASES)
def test_gradcheck_memory_efficient_conv(case):
    m = _layer(case)
    x = torch.randn(2, case[0], 6, 7, dtype=torch.double, requires_grad=True)
    params = [m.weight_a, m.weight_b, m.weight_c] + ([m.bias_a, m.bias_b, m.bias_c] if case[-1] else [None] * 3)

    def fn(x, *w):
        ws = list(w) + [None] * (6 - len(w))
        return quadra_conv2d(x, *ws, stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)

    assert gradcheck(fn, (x, *[p for p in params if p is not None]))


@pytest.mark.parametrize("case", CASES)
def test_efficient_equals_plain_and_three_convs(case):
    eff, plain = _layer(case), _layer(case, memory_efficient=False)
    x = torch.randn(2, case[0], 6, 7, dtype=torch.double, requires_grad=True)
    args = (eff.stride, eff.padding, eff.dilation, eff.groups)
    ref = (F.conv2d(x, eff.weight_a, eff.bias_a, *args) * F.conv2d(x, eff.weight_b, eff.bias_b, *args)
           + F.conv2d(x, eff.weight_c, eff.bias_c, *args))
    y1, y2 = eff(x), plain(x)
    torch.testing.assert_close(y1, ref)
    torch.testing.assert_close(y2, ref)
    g = torch.randn_like(y1)
    g1 = torch.autograd.grad(y1, [x, *eff.parameters()], g)
    g2 = torch.autograd.grad(y2, [x, *plain.parameters()], g)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_linear_gradcheck_and_equivalence():
    torch.manual_seed(0)
    lin = QuadraLinear(5, 3).double()
    x = torch.randn(2, 4, 5, dtype=torch.double, requires_grad=True)
    assert gradcheck(lin, (x,))
    ref = F.linear(x, lin.weight_a, lin.bias_a) * F.linear(x, lin.weight_b, lin.bias_b) + F.linear(
        x, lin.weight_c, lin.bias_c)
    torch.testing.assert_close(lin(x), ref)


def test_parameter_count_is_three_convs():
    q, c = QuadraConv2d(8, 16, 3, groups=2), torch.nn.Conv2d(8, 16, 3, groups=2)
    assert sum(p.numel() for p in q.parameters()) == 3 * sum(p.numel() for p in c.parameters())


def test_with_zero_b_filter_it_is_linear():
    q = QuadraConv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        q.weight_b.zero_()
        q.bias_b.fill_(1.0)
    x = torch.randn(1, 3, 5, 5)
    ref = F.conv2d(x, q.weight_a, q.bias_a, padding=1) + F.conv2d(x, q.weight_c, q.bias_c, padding=1)
    torch.testing.assert_close(q(x), ref)


def _saved_bytes(module, x) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum()
    return total


def test_memory_efficient_saves_only_input_and_weights():
    x = torch.randn(8, 16, 14, 14, requires_grad=True)
    eff, plain = QuadraConv2d(16, 16, 7, padding=3, groups=16), QuadraConv2d(16, 16, 7, padding=3, groups=16,
                                                                            memory_efficient=False)
    weights = 3 * 16 * 49 + 2 * 16  # w_a, w_b, w_c and the biases needed to recompute f_a, f_b
    assert _saved_bytes(eff, x) == 4 * (x.numel() + weights)
    assert _saved_bytes(plain, x) > 2 * _saved_bytes(eff, x)  # plain also keeps f_a(x), f_b(x)


@pytest.mark.parametrize("bad", [dict(in_channels=6, out_channels=4, groups=4), dict(in_channels=4, out_channels=6,
                                                                                      groups=4)])
def test_channels_not_divisible_by_groups(bad):
    with pytest.raises(ValueError, match="divisible by groups"):
        QuadraConv2d(kernel_size=3, **bad)
