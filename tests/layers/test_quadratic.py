"""Quadratic layers: the hand-derived backward against finite differences and autograd, and what backward keeps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from chipfit.layers import QUADRATIC_INIT_SCALE, QuadraConv2d, QuadraLinear, quadra_conv2d, quadra_linear

CASES = {
    # cin, cout, kernel, stride, padding, dilation, groups, bias
    "depthwise": (4, 4, 3, 1, 1, 1, 4, True),
    "depthwise_multiplier": (2, 4, 3, 1, 1, 1, 2, True),
    "grouped": (4, 6, 3, 1, 1, 1, 2, True),
    "full": (3, 5, 3, 1, 0, 1, 1, True),
    "kernel_1x3": (3, 4, (1, 3), 1, (0, 1), 1, 1, True),
    "stride2": (4, 4, 3, 2, 1, 1, 2, True),
    "dilation2": (4, 4, 3, 1, 2, 2, 1, True),
    "no_bias": (4, 4, 3, 1, 1, 1, 1, False),
    "depthwise_no_bias_stride2": (4, 4, 3, 2, 1, 1, 4, False),
    "same_even_kernel": (2, 3, 2, 1, "same", 1, 1, True),
}


def _layer(case, memory_efficient=True, dtype=torch.double):
    cin, cout, k, s, p, d, g, bias = case
    torch.manual_seed(0)
    return QuadraConv2d(cin, cout, k, s, p, d, g, bias, memory_efficient).to(dtype)


def _params(m):
    return [m.weight_a, m.weight_b, m.weight_c, m.bias_a, m.bias_b, m.bias_c]


def _three_convs(m, x):
    """The definition, written out with F.conv2d on a zero-padded input."""
    pad = m.padding
    if pad == "same":
        total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        x = F.pad(x, (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2))
        pad = 0
    args = (m.stride, pad, m.dilation, m.groups)
    a = F.conv2d(x, m.weight_a, m.bias_a, *args)
    return a * F.conv2d(x, m.weight_b, m.bias_b, *args) + F.conv2d(x, m.weight_c, m.bias_c, *args)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_gradcheck_memory_efficient_conv(case):
    m = _layer(case)
    x = torch.randn(1, case[0], 5, 5, dtype=torch.double, requires_grad=True)
    present = [p for p in _params(m) if p is not None]

    def fn(x, *ps):
        ws = list(ps) + [None] * (6 - len(ps))
        return quadra_conv2d(x, *ws, stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)

    assert gradcheck(fn, (x, *present))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_efficient_equals_plain_and_definition(case):
    eff, plain = _layer(case), _layer(case, memory_efficient=False)
    x = torch.randn(2, case[0], 6, 7, dtype=torch.double, requires_grad=True)
    y1, y2 = eff(x), plain(x)
    torch.testing.assert_close(y1, _three_convs(eff, x))
    torch.testing.assert_close(y2, y1)
    with torch.no_grad():  # the inference path (fused filters where they are not depthwise)
        torch.testing.assert_close(eff(x), y1)
    g = torch.randn_like(y1)
    g1 = torch.autograd.grad(y1, [x, *eff.parameters()], g)
    g2 = torch.autograd.grad(y2, [x, *plain.parameters()], g)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_depthwise_forward_is_bitwise_the_same():
    eff, plain = _layer(CASES["depthwise"], dtype=torch.float), _layer(CASES["depthwise"], False, torch.float)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    assert torch.equal(eff(x), plain(x))


def test_partial_gradients_frozen_weights_and_constant_input():
    m = _layer(CASES["grouped"])
    x = torch.randn(1, 4, 5, 5, dtype=torch.double, requires_grad=True)
    for p in m.parameters():
        p.requires_grad_(False)
    (gx,) = torch.autograd.grad(m(x).sum(), [x])
    m.memory_efficient = False
    torch.testing.assert_close(gx, torch.autograd.grad(m(x).sum(), [x])[0])
    m.weight_b.requires_grad_(True)
    m.memory_efficient = True
    y = m(x.detach())
    (gwb,) = torch.autograd.grad(y.sum(), [m.weight_b])
    m.memory_efficient = False
    torch.testing.assert_close(gwb, torch.autograd.grad(m(x.detach()).sum(), [m.weight_b])[0])


def test_unbatched_input():
    m = _layer(CASES["full"])
    x = torch.randn(3, 6, 6, dtype=torch.double)
    torch.testing.assert_close(m(x), m(x[None])[0])


def test_no_double_backward():
    m = _layer(CASES["depthwise"])
    x = torch.randn(1, 4, 5, 5, dtype=torch.double, requires_grad=True)
    y = m(x)
    (gx,) = torch.autograd.grad(y, [x], torch.ones_like(y, requires_grad=True), create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gx.sum().backward()


def test_autocast_bf16_matches_plain():
    eff, plain = _layer(CASES["grouped"], dtype=torch.float), _layer(CASES["grouped"], False, torch.float)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y1, y2 = eff(x), plain(x)
    assert y1.dtype == y2.dtype == torch.bfloat16
    torch.testing.assert_close(y1, y2, rtol=2e-2, atol=2e-2)
    g1 = torch.autograd.grad(y1.float().sum(), [x, eff.weight_a])
    g2 = torch.autograd.grad(y2.float().sum(), [x, plain.weight_a])
    for a, b in zip(g1, g2, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2)


def test_linear_gradcheck_and_equivalence():
    torch.manual_seed(0)
    eff, plain = QuadraLinear(5, 3).double(), QuadraLinear(5, 3, memory_efficient=False).double()
    plain.load_state_dict(eff.state_dict())
    x = torch.randn(2, 4, 5, dtype=torch.double, requires_grad=True)
    assert gradcheck(eff, (x,))
    ref = F.linear(x, eff.weight_a, eff.bias_a) * F.linear(x, eff.weight_b, eff.bias_b) + F.linear(
        x, eff.weight_c, eff.bias_c)
    y1, y2 = eff(x), plain(x)
    torch.testing.assert_close(y1, ref)
    torch.testing.assert_close(y2, ref)
    g = torch.randn_like(y1)
    for a, b in zip(torch.autograd.grad(y1, [x, *eff.parameters()], g),
                    torch.autograd.grad(y2, [x, *plain.parameters()], g), strict=True):
        torch.testing.assert_close(a, b)


def test_linear_without_bias_gradcheck():
    torch.manual_seed(0)
    w = [torch.randn(3, 4, dtype=torch.double, requires_grad=True) for _ in range(3)]
    x = torch.randn(5, 4, dtype=torch.double, requires_grad=True)
    assert gradcheck(lambda x, *w: quadra_linear(x, *w), (x, *w))


def test_parameter_count_is_three_convs():
    for case in CASES.values():
        cin, cout, k, s, p, d, g, bias = case
        conv = torch.nn.Conv2d(cin, cout, k, s, p, d, g, bias)
        assert sum(p.numel() for p in _layer(case).parameters()) == 3 * sum(p.numel() for p in conv.parameters())
    assert sum(p.numel() for p in QuadraLinear(7, 5).parameters()) == 3 * (7 * 5 + 5)


def test_with_zero_b_filter_it_is_linear():
    q = QuadraConv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        q.weight_b.zero_()
        q.bias_b.fill_(1.0)
    x = torch.randn(1, 3, 5, 5)
    ref = F.conv2d(x, q.weight_a, q.bias_a, padding=1) + F.conv2d(x, q.weight_c, q.bias_c, padding=1)
    torch.testing.assert_close(q(x), ref)


def test_known_output_one_by_one():
    # 1x1 filters a = 2, b = 3, c = 5 with biases 1, -1, 0.5 on x: (2x + 1)(3x - 1) + 5x + 0.5
    q = QuadraConv2d(1, 1, 1)
    with torch.no_grad():
        for p, v in zip(_params(q), (2.0, 3.0, 5.0, 1.0, -1.0, 0.5), strict=True):
            p.fill_(v)
    x = torch.tensor([[[[0.0, 1.0], [-1.0, 2.0]]]])
    torch.testing.assert_close(q(x), (2 * x + 1) * (3 * x - 1) + 5 * x + 0.5)


def test_init_b_is_scaled_down():
    torch.manual_seed(0)
    q = QuadraConv2d(64, 64, 3)
    bound = 1 / math.sqrt(64 * 9)
    assert q.weight_a.abs().max() <= bound and q.weight_c.abs().max() <= bound
    assert q.weight_b.abs().max() <= QUADRATIC_INIT_SCALE * bound
    ratio = q.weight_b.std() / q.weight_a.std()
    assert abs(ratio - QUADRATIC_INIT_SCALE) < 0.01


def _saved_bytes(module, x) -> tuple[int, int]:
    """(bytes of all tensors saved for backward, bytes of the distinct storages among them)."""
    total, storages = 0, {}

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum()
    return total, sum(storages.values())


def test_memory_efficient_saves_only_input_and_weights():
    c, hw = 16, 14
    x = torch.randn(8, c, hw, hw, requires_grad=True)
    eff = QuadraConv2d(c, c, 7, padding=3, groups=c)
    plain = QuadraConv2d(c, c, 7, padding=3, groups=c, memory_efficient=False)
    filters = 3 * c * 7 * 7
    # the input, the three filters, and the biases of f_a and f_b (needed to recompute them)
    assert _saved_bytes(eff, x) == (4 * (x.numel() + filters + 2 * c),) * 2
    # plain autograd: every conv keeps the input and its filter, the product keeps f_a(x) and f_b(x)
    total, distinct = _saved_bytes(plain, x)
    assert total == 4 * (3 * x.numel() + filters + 2 * x.numel())
    assert distinct == 4 * (x.numel() + filters + 2 * x.numel())
    assert _saved_bytes(eff, x)[1] < distinct


def test_memory_efficient_linear_saves_only_input_and_weights():
    x = torch.randn(4, 10, 16, requires_grad=True)
    eff, plain = QuadraLinear(16, 32), QuadraLinear(16, 32, memory_efficient=False)
    assert _saved_bytes(eff, x)[1] == 4 * (x.numel() + 3 * 32 * 16 + 2 * 32)
    assert _saved_bytes(eff, x)[1] < _saved_bytes(plain, x)[1]


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(in_channels=6, out_channels=4, groups=4), "in_channels 6 is not divisible by groups 4"),
    (dict(in_channels=4, out_channels=6, groups=4), "out_channels 6 is not divisible by groups 4"),
    (dict(in_channels=4, out_channels=4, groups=0), "groups must be a positive int, got 0"),
    (dict(in_channels=4, out_channels=4, stride=2, padding="same"), "padding='same' needs stride 1"),
    (dict(in_channels=4, out_channels=4, padding="full"), "got 'full'"),
    (dict(in_channels=4, out_channels=4, dilation=0), "dilation must be an int >= 1"),
])
def test_impossible_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuadraConv2d(kernel_size=3, **kwargs)


def test_functional_shape_errors():
    w = torch.randn(4, 1, 3, 3)
    with pytest.raises(ValueError, match="same shape"):
        quadra_conv2d(torch.randn(1, 4, 5, 5), w, w, torch.randn(4, 1, 5, 5), groups=4)
    with pytest.raises(ValueError, match="input has 3 channels"):
        quadra_conv2d(torch.randn(1, 3, 5, 5), w, w, w, groups=4)
    with pytest.raises(ValueError, match="input has 6 features"):
        QuadraLinear(5, 2)(torch.randn(2, 6))
