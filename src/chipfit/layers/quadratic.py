"""Quadratic neurons (QuadraNet, Xu et al. ASP-DAC 2024): y = f_a(x) * f_b(x) + f_c(x), with three filters of the
same shape and their own biases, and no activation inside.

The memory-efficient form (the default) is a custom autograd Function that keeps only the input and the weights
for backward and recomputes f_a(x), f_b(x) there. With g = dL/dy:

    dL/dx   = f_a^T(g * f_b(x)) + f_b^T(g * f_a(x)) + f_c^T(g)
    dL/dw_a = (g * f_b(x)) against x,   dL/dw_b = (g * f_a(x)) against x,   dL/dw_c = g against x
    dL/db_a = sum(g * f_b(x)),          dL/db_b = sum(g * f_a(x)),          dL/db_c = sum(g)

Dense and grouped filters run as ONE convolution (or matmul) whose output channels are the three filters
interleaved per group, so forward and backward each make one call instead of three. Depthwise filters (one input
channel per group) run as three depthwise convolutions instead: CPU kernels have a fast path for true depthwise
convolutions and none for a channel multiplier of 3 (measured here: 3.4 ms for three 7x7 depthwise convs on
8x256x14x14 against 30.5 ms for the fused one).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight


def _stack(ws: tuple[torch.Tensor, ...], groups: int) -> torch.Tensor:
    """Stack filters (C_out, C_in/g, kh, kw) so that each group's outputs are [f_a, f_b, ...] of that group."""
    cout = ws[0].shape[0]
    parts = [w.reshape(groups, cout // groups, *w.shape[1:]) for w in ws]
    return torch.stack(parts, dim=1).reshape(len(ws) * cout, *ws[0].shape[1:])


def _unstack(y: torch.Tensor, n: int, groups: int) -> list[torch.Tensor]:
    """Inverse of _stack on a conv output (N, n*C_out, H, W) -> n maps (N, C_out, H, W)."""
    b, c, h, w = y.shape
    y = y.reshape(b, groups, n, c // (n * groups), h, w)
    return [y[:, :, i].reshape(b, c // n, h, w) for i in range(n)]


def _stack_bias(bs: tuple[torch.Tensor | None, ...], cout: int, groups: int, like: torch.Tensor) -> torch.Tensor:
    parts = [(b if b is not None else like.new_zeros(cout)).reshape(groups, cout // groups) for b in bs]
    return torch.stack(parts, dim=1).reshape(-1)


def _separate(w: torch.Tensor, groups: int) -> bool:
    """Depthwise-shaped filters (one input channel per group) run as separate convolutions."""
    return groups > 1 and w.shape[1] == 1


def _branches(x, ws, bs, stride, padding, dilation, groups) -> list[torch.Tensor]:
    """conv_i(x) for each filter i, as separate depthwise convolutions or one fused convolution."""
    if _separate(ws[0], groups):
        return [F.conv2d(x, w, b, stride, padding, dilation, groups) for w, b in zip(ws, bs, strict=True)]
    w = _stack(tuple(ws), groups)
    b = _stack_bias(tuple(bs), ws[0].shape[0], groups, ws[0])
    return _unstack(F.conv2d(x, w, b, stride, padding, dilation, groups), len(ws), groups)


class _QuadraConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, wa, wb, wc, ba, bb, bc, stride, padding, dilation, groups):
        a, bmap, c = _branches(x, (wa, wb, wc), (ba, bb, bc), stride, padding, dilation, groups)
        ctx.save_for_backward(x, wa, wb, wc, ba, bb)
        ctx.has_bias = (ba is not None, bb is not None, bc is not None)
        ctx.conf = (stride, padding, dilation, groups)
        return a * bmap + c

    @staticmethod
    def backward(ctx, g):
        x, wa, wb, wc, ba, bb = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        conf = (stride, padding, dilation, groups)
        a, b = _branches(x, (wa, wb), (ba, bb), *conf)  # recompute f_a(x), f_b(x)
        ga, gb = g * b, g * a
        need = ctx.needs_input_grad
        gx = gwa = gwb = gwc = None
        if _separate(wa, groups):
            pairs = ((wa, ga), (wb, gb), (wc, g))
            if need[0]:
                gx = sum(conv2d_input(x.shape, w, gi, *conf) for w, gi in pairs)
            gwa, gwb, gwc = (conv2d_weight(x, w.shape, gi, *conf) if need[1 + i] else None
                             for i, (w, gi) in enumerate(pairs))
        else:
            cout = wa.shape[0]
            gs = torch.cat([t.reshape(t.shape[0], groups, 1, cout // groups, *t.shape[2:]) for t in (ga, gb, g)], 2)
            gs = gs.reshape(g.shape[0], 3 * cout, *g.shape[2:])
            w = _stack((wa, wb, wc), groups)
            if need[0]:
                gx = conv2d_input(x.shape, w, gs, *conf)
            if any(need[1:4]):
                gw = conv2d_weight(x, w.shape, gs, *conf).reshape(groups, 3, cout // groups, *w.shape[1:])
                gwa, gwb, gwc = (gw[:, i].reshape(wa.shape) for i in range(3))
        gba = ga.sum((0, 2, 3)) if ctx.has_bias[0] and need[4] else None
        gbb = gb.sum((0, 2, 3)) if ctx.has_bias[1] and need[5] else None
        gbc = g.sum((0, 2, 3)) if ctx.has_bias[2] and need[6] else None
        return gx, gwa, gwb, gwc, gba, gbb, gbc, None, None, None, None


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def quadra_conv2d(x: torch.Tensor, w_a: torch.Tensor, w_b: torch.Tensor, w_c: torch.Tensor,
                  b_a: torch.Tensor | None = None, b_b: torch.Tensor | None = None, b_c: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1, groups: int = 1, memory_efficient: bool = True) -> torch.Tensor:
    """conv_a(x) * conv_b(x) + conv_c(x); see the module docstring."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if memory_efficient and torch.is_grad_enabled():
        return _QuadraConvFn.apply(x, w_a, w_b, w_c, b_a, b_b, b_c, stride, padding, dilation, groups)
    a, bm, c = _branches(x, (w_a, w_b, w_c), (b_a, b_b, b_c), stride, padding, dilation, groups)
    return a * bm + c


def _three_filters(layer: nn.Module, shape: tuple[int, ...], bias: bool) -> None:
    """Give ``layer`` the parameters weight_a/b/c (``shape``) and bias_a/b/c (or None), initialised."""
    layer.weight_a, layer.weight_b, layer.weight_c = (nn.Parameter(torch.empty(shape)) for _ in range(3))
    for name in ("bias_a", "bias_b", "bias_c"):
        layer.register_parameter(name, nn.Parameter(torch.empty(shape[0])) if bias else None)
    _init_three(layer)


def _init_three(layer: nn.Module) -> None:
    """nn.Conv2d's / nn.Linear's default initialisation, for each of the three filters."""
    fan_in = math.prod(layer.weight_a.shape[1:])
    for w in (layer.weight_a, layer.weight_b, layer.weight_c):
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    if layer.bias_a is not None:
        bound = 1 / math.sqrt(fan_in)
        for b in (layer.bias_a, layer.bias_b, layer.bias_c):
            nn.init.uniform_(b, -bound, bound)


class QuadraConv2d(nn.Module):
    """Low-rank quadratic convolution: conv_a(x) * conv_b(x) + conv_c(x).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as ``nn.Conv2d``
            (``padding="same"`` for stride 1 and odd effective kernels).
        memory_efficient: keep only the input and weights for backward and recompute (default); ``False`` uses plain
            autograd, which keeps conv_a(x) and conv_b(x) as well.

    The three filters take ``nn.Conv2d``'s default initialisation each.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, memory_efficient: bool = True):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"QuadraConv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must both "
                             f"be divisible by groups ({groups})")
        k = _pair(kernel_size)
        self.stride, self.dilation = _pair(stride), _pair(dilation)
        if padding == "same":
            if self.stride != (1, 1) or any((d * (kk - 1)) % 2 for d, kk in zip(self.dilation, k, strict=True)):
                raise ValueError("QuadraConv2d: padding='same' needs stride 1 and an odd effective kernel")
            padding = tuple(d * (kk - 1) // 2 for d, kk in zip(self.dilation, k, strict=True))
        self.padding = _pair(padding)
        self.in_channels, self.out_channels, self.kernel_size, self.groups = in_channels, out_channels, k, groups
        self.memory_efficient = memory_efficient
        _three_filters(self, (out_channels, in_channels // groups, *k), bias)

    def reset_parameters(self) -> None:
        _init_three(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quadra_conv2d(x, self.weight_a, self.weight_b, self.weight_c, self.bias_a, self.bias_b, self.bias_c,
                             self.stride, self.padding, self.dilation, self.groups, self.memory_efficient)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, memory_efficient={self.memory_efficient}")


class _QuadraLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, wa, wb, wc, ba, bb, bc):
        w = torch.cat([wa, wb, wc], 0)
        b = None if ba is None else torch.cat([ba, bb, bc], 0)
        a, bm, c = F.linear(x, w, b).chunk(3, -1)
        ctx.save_for_backward(x, wa, wb, wc, ba, bb)
        ctx.has_bias = ba is not None
        return a * bm + c

    @staticmethod
    def backward(ctx, g):
        x, wa, wb, wc, ba, bb = ctx.saved_tensors
        a, b = F.linear(x, torch.cat([wa, wb], 0), None if ba is None else torch.cat([ba, bb], 0)).chunk(2, -1)
        gs = torch.cat([g * b, g * a, g], -1)
        w = torch.cat([wa, wb, wc], 0)
        gx = gs @ w if ctx.needs_input_grad[0] else None
        gw = gs.reshape(-1, gs.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
        gwa, gwb, gwc = gw.chunk(3, 0)
        gbias = gs.reshape(-1, gs.shape[-1]).sum(0).chunk(3) if ctx.has_bias else (None, None, None)
        return (gx, gwa, gwb, gwc, *gbias)


class QuadraLinear(nn.Module):
    """Low-rank quadratic fully connected layer on (..., in_features): a(x) * b(x) + c(x)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, memory_efficient: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.memory_efficient = in_features, out_features, memory_efficient
        _three_filters(self, (out_features, in_features), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = (x, self.weight_a, self.weight_b, self.weight_c, self.bias_a, self.bias_b, self.bias_c)
        if self.memory_efficient and torch.is_grad_enabled():
            return _QuadraLinearFn.apply(*args)
        w = torch.cat(args[1:4], 0)
        b = None if self.bias_a is None else torch.cat(args[4:7], 0)
        a, bm, c = F.linear(x, w, b).chunk(3, -1)
        return a * bm + c
