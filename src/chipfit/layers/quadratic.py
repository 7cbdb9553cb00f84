"""Quadratic neurons (QuadraNet, Xu et al. ASP-DAC 2024): y = f_a(x) * f_b(x) + f_c(x).

Three filters of the same shape, each with its own bias, and no activation inside: the rank-one factorisation of
y = x^T W x + w^T x + b, with 3n parameters instead of n^2.

Memory-efficient backward (QuadraLib's "hybrid back-propagation", here for convolutions too). Plain autograd keeps
the input and both f_a(x) and f_b(x) for the product. The memory-efficient form (the default) is a custom autograd
Function that keeps only the input and the filters, recomputes f_a(x) and f_b(x) in backward, and uses the
hand-derived gradients, with g = dL/dy:

    dL/dx   = f_a^T(g * f_b(x)) + f_b^T(g * f_a(x)) + f_c^T(g)
    dL/dw_a = (g * f_b(x)) against x,   dL/dw_b = (g * f_a(x)) against x,   dL/dw_c = g against x
    dL/db_a = sum(g * f_b(x)),          dL/db_b = sum(g * f_a(x)),          dL/db_c = sum(g)

It trades one extra evaluation of f_a and f_b per backward for two fewer output-sized maps kept per layer. The
Function is differentiable once (no double backward); use ``memory_efficient=False`` for higher derivatives.

How the three filters run. Dense and grouped filters run as ONE convolution (or matmul) whose output channels are
the three filters interleaved per group, so forward and backward each make one call instead of three. Depthwise
filters (one input channel per group) run as three depthwise convolutions instead: CPU kernels have a fast path
for true depthwise convolutions and none for a channel multiplier of 3 (measured here: 3.4 ms for three 7x7
depthwise convs on 8x256x14x14 against 30.5 ms for the fused one). The plain-autograd form with gradients on runs
three separate convolutions, as a user would write it, so that it is an honest baseline for the memory saved.

Initialisation. f_a and f_c take ``nn.Conv2d``'s / ``nn.Linear``'s default (kaiming-uniform with a = sqrt(5), i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases). f_b is drawn the same way and then multiplied by
``QUADRATIC_INIT_SCALE`` (0.1), weights and bias: on unit-variance input the product f_a * f_b then starts about
ten times smaller than with equal scales (std ~0.03 against ~0.58 for f_c), so a fresh layer behaves nearly like
the linear f_c and the quadratic term grows as training finds it useful; f_b is not zero, so w_a still receives
gradient from the first step. Model builders that apply their own initialisation (truncated normal in the
QuadraNet zoo) overwrite all of this.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

QUADRATIC_INIT_SCALE = 0.1
"""Scale of f_b's initial weights and bias relative to nn.Conv2d's / nn.Linear's default (see the module docs)."""

_Conf = tuple[tuple[int, int], tuple[int, int], tuple[int, int], int]  # stride, padding, dilation, groups


# --- argument handling ----------------------------------------------------------------------------------------------


def _pair(v, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a 2-sequence of ints, each at least ``minimum``, as a pair."""
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(p, int) and p >= minimum for p in pair):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {v!r}")
    return pair  # type: ignore[return-value]


def _resolve_padding(padding, kernel: tuple[int, int], stride: tuple[int, int],
                     dilation: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """Symmetric conv padding, plus an (left, right, top, bottom) F.pad for "same" with an even effective kernel."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), None
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1 (got stride {stride}); give the padding as numbers")
        total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
        # as nn.Conv2d does, an odd total puts the extra row/column at the bottom/right
        extra = (0, total[1] % 2, 0, total[0] % 2)
        return (total[0] // 2, total[1] // 2), (extra if any(extra) else None)
    return _pair(padding, "padding", minimum=0), None


def _check_filters(ws: tuple[torch.Tensor, ...], bs: tuple[torch.Tensor | None, ...]) -> None:
    if not ws[0].shape == ws[1].shape == ws[2].shape:
        raise ValueError(f"the three filters must have the same shape, got {[tuple(w.shape) for w in ws]}")
    for b in bs:
        if b is not None and b.shape != (ws[0].shape[0],):
            raise ValueError(f"a bias must have shape ({ws[0].shape[0]},) to match the filters, got {tuple(b.shape)}")


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The autocast dtype in force for ``x``'s device, or None."""
    dev = x.device.type
    if torch.amp.is_autocast_available(dev) and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return None


def _cast(ts: tuple[torch.Tensor | None, ...], dtype: torch.dtype) -> tuple[torch.Tensor | None, ...]:
    return tuple(None if t is None else t.to(dtype) for t in ts)


# --- convolution ----------------------------------------------------------------------------------------------------


def _depthwise_shaped(w: torch.Tensor, groups: int) -> bool:
    """One input channel per group: run the three filters as separate (fast-path) depthwise convolutions."""
    return groups > 1 and w.shape[1] == 1


def _stack(ws: tuple[torch.Tensor, ...], groups: int) -> torch.Tensor:
    """Filters (C_out, C_in/g, kh, kw) stacked so that each group's outputs are [f_a, f_b, ...] of that group.

    Grouped convolution maps output-channel block i to input group i, so the filters are interleaved per group
    rather than concatenated (concatenating would send f_b's first channels to the wrong input group).
    """
    cout = ws[0].shape[0]
    return torch.stack([w.reshape(groups, cout // groups, *w.shape[1:]) for w in ws], 1).reshape(-1, *ws[0].shape[1:])


def _stack_bias(bs: tuple[torch.Tensor | None, ...], cout: int, groups: int, like: torch.Tensor) -> torch.Tensor:
    parts = [(like.new_zeros(cout) if b is None else b).reshape(groups, cout // groups) for b in bs]
    return torch.stack(parts, 1).reshape(-1)


def _unstack(y: torch.Tensor, n: int, groups: int) -> list[torch.Tensor]:
    """Inverse of _stack along dim 1: (N, n*C, ...) -> n tensors (N, C, ...)."""
    b, c, rest = y.shape[0], y.shape[1], y.shape[2:]
    y = y.reshape(b, groups, n, c // (n * groups), *rest)
    return [y[:, :, i].reshape(b, c // n, *rest) for i in range(n)]


def _branches(x: torch.Tensor, ws, bs, conf: _Conf) -> list[torch.Tensor]:
    """f_i(x) for each filter i, as separate depthwise convolutions or as one convolution."""
    stride, padding, dilation, groups = conf
    if _depthwise_shaped(ws[0], groups):
        return [F.conv2d(x, w, b, stride, padding, dilation, groups) for w, b in zip(ws, bs, strict=True)]
    w = _stack(tuple(ws), groups)
    b = None if all(b is None for b in bs) else _stack_bias(tuple(bs), ws[0].shape[0], groups, ws[0])
    return _unstack(F.conv2d(x, w, b, stride, padding, dilation, groups), len(ws), groups)


def _conv_backward(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, conf: _Conf, need_x: bool, need_w: bool,
                   need_b: bool) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(dL/dx, dL/dw, dL/db) of a convolution for output gradient ``g``, in one aten call."""
    if not (need_x or need_w or need_b):
        return None, None, None
    stride, padding, dilation, groups = conf
    return torch.ops.aten.convolution_backward(g, x, w, [w.shape[0]] if need_b else None, stride, padding, dilation,
                                               False, [0, 0], groups, [need_x, need_w, need_b])


class _QuadraConv2dFn(torch.autograd.Function):
    """conv_a(x) * conv_b(x) + conv_c(x), keeping only x and the filters for backward."""

    @staticmethod
    def forward(ctx, x, wa, wb, wc, ba, bb, bc, conf: _Conf):
        a, b, c = _branches(x, (wa, wb, wc), (ba, bb, bc), conf)
        ctx.save_for_backward(x, wa, wb, wc, ba, bb)  # ba, bb are needed to recompute f_a(x), f_b(x)
        ctx.conf = conf
        y = a * b
        y += c
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, wa, wb, wc, ba, bb = ctx.saved_tensors
        conf, need = ctx.conf, ctx.needs_input_grad
        a, b = _branches(x, (wa, wb), (ba, bb), conf)  # recompute: the memory saved in forward is paid for here
        ga, gb = b.mul_(g), a.mul_(g)  # g * f_b(x), g * f_a(x), in the recomputed buffers
        del a, b
        if _depthwise_shaped(wa, conf[3]):
            gx_a, gwa, gba = _conv_backward(ga, x, wa, conf, need[0], need[1], need[4])
            gx_b, gwb, gbb = _conv_backward(gb, x, wb, conf, need[0], need[2], need[5])
            gx_c, gwc, gbc = _conv_backward(g, x, wc, conf, need[0], need[3], need[6])
            gx = gx_a + gx_b + gx_c if need[0] else None
        else:  # one backward call for the three filters, stacked as in forward
            groups = conf[3]
            gs = torch.cat([t.reshape(t.shape[0], groups, 1, -1, *t.shape[2:]) for t in (ga, gb, g)], 2)
            gs = gs.reshape(g.shape[0], -1, *g.shape[2:])
            del ga, gb
            gx, gw, gbias = _conv_backward(gs, x, _stack((wa, wb, wc), groups), conf, need[0], any(need[1:4]),
                                           any(need[4:7]))
            gwa, gwb, gwc = (t[0] for t in _unstack(gw[None], 3, groups)) if gw is not None else (None,) * 3
            gba, gbb, gbc = (t[0] for t in _unstack(gbias[None], 3, groups)) if gbias is not None else (None,) * 3
        grads = (gx, gwa, gwb, gwc, gba, gbb, gbc)
        return (*(gr if n else None for gr, n in zip(grads, need[:7], strict=True)), None)


def quadra_conv2d(x: torch.Tensor, w_a: torch.Tensor, w_b: torch.Tensor, w_c: torch.Tensor,
                  b_a: torch.Tensor | None = None, b_b: torch.Tensor | None = None, b_c: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1, groups: int = 1, memory_efficient: bool = True) -> torch.Tensor:
    """Quadratic convolution conv_a(x) * conv_b(x) + conv_c(x).

    Args:
        x: input (N, C_in, H, W) or unbatched (C_in, H, W).
        w_a, w_b, w_c: three filters of one shape (C_out, C_in / groups, kh, kw).
        b_a, b_b, b_c: their biases (C_out,), each optional.
        stride, padding, dilation, groups: as ``F.conv2d`` (padding also "same" for stride 1, or "valid").
        memory_efficient: keep only ``x`` and the filters for backward and recompute (see the module docstring);
            ``False`` is plain autograd.

    Returns:
        (N, C_out, H_out, W_out), or unbatched like ``x``.
    """
    _check_filters((w_a, w_b, w_c), (b_a, b_b, b_c))
    if x.dim() == 3:
        return quadra_conv2d(x[None], w_a, w_b, w_c, b_a, b_b, b_c, stride, padding, dilation, groups,
                             memory_efficient)[0]
    if x.dim() != 4:
        raise ValueError(f"quadra_conv2d expects a (N, C, H, W) or (C, H, W) input, got shape {tuple(x.shape)}")
    if not isinstance(groups, int) or groups < 1 or w_a.shape[0] % groups:
        raise ValueError(f"groups must be a positive int dividing the filters' {w_a.shape[0]} outputs, got {groups!r}")
    if x.shape[1] != w_a.shape[1] * groups:
        raise ValueError(f"input has {x.shape[1]} channels but the filters expect {w_a.shape[1]} per group x "
                         f"groups {groups} = {w_a.shape[1] * groups}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    padding, pre_pad = _resolve_padding(padding, tuple(w_a.shape[2:]), stride, dilation)
    if pre_pad is not None:
        x = F.pad(x, pre_pad)
    conf = (stride, padding, dilation, groups)
    ws, bs = (w_a, w_b, w_c), (b_a, b_b, b_c)
    if not torch.is_grad_enabled():
        a, b, c = _branches(x, ws, bs, conf)
    elif memory_efficient:
        dtype = _autocast_dtype(x)
        if dtype is None:
            return _QuadraConv2dFn.apply(x, *ws, *bs, conf)
        # cast outside the Function (autograd casts the gradients back) so that forward and backward agree on it
        with torch.autocast(x.device.type, enabled=False):
            return _QuadraConv2dFn.apply(*_cast((x, *ws, *bs), dtype), conf)
    else:
        a, b, c = (F.conv2d(x, w, bias, *conf) for w, bias in zip(ws, bs, strict=True))
    y = a * b
    return y + c


def _three_filters(layer: nn.Module, shape: tuple[int, ...], bias: bool) -> None:
    """Give ``layer`` the parameters weight_a/b/c (``shape``) and bias_a/b/c (or None)."""
    layer.weight_a, layer.weight_b, layer.weight_c = (nn.Parameter(torch.empty(shape)) for _ in range(3))
    for name in ("bias_a", "bias_b", "bias_c"):
        layer.register_parameter(name, nn.Parameter(torch.empty(shape[0])) if bias else None)


def _init_three(layer: nn.Module) -> None:
    """nn.Conv2d's / nn.Linear's default initialisation for f_a and f_c; the same times QUADRATIC_INIT_SCALE for f_b."""
    bound = 1 / math.sqrt(math.prod(layer.weight_a.shape[1:]))
    with torch.no_grad():
        for w in (layer.weight_a, layer.weight_b, layer.weight_c):
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        for b in (layer.bias_a, layer.bias_b, layer.bias_c):
            if b is not None:
                nn.init.uniform_(b, -bound, bound)
        layer.weight_b.mul_(QUADRATIC_INIT_SCALE)
        if layer.bias_b is not None:
            layer.bias_b.mul_(QUADRATIC_INIT_SCALE)


class QuadraConv2d(nn.Module):
    """Low-rank quadratic convolution: conv_a(x) * conv_b(x) + conv_c(x).

    Parameters ``weight_a``, ``weight_b``, ``weight_c`` of shape (out_channels, in_channels / groups, kh, kw) and
    ``bias_a``, ``bias_b``, ``bias_c`` of shape (out_channels,) (None without bias): three times an ``nn.Conv2d``.
    Initialisation: see the module docstring (f_b starts at 0.1x the default scale).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as ``nn.Conv2d``; padding
            may be "same" (stride 1 only; an even effective kernel pads one more at the bottom/right) or "valid".
        memory_efficient: keep only the input and the filters for backward and recompute f_a(x), f_b(x) there
            (default); ``False`` uses plain autograd, which keeps f_a(x) and f_b(x) as well.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, memory_efficient: bool = True):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"QuadraConv2d: {name} must be a positive int, got {v!r}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if v % groups:
                raise ValueError(f"QuadraConv2d: {name} {v} is not divisible by groups {groups}; every group needs "
                                 f"the same number of channels, so choose groups among the divisors of {v}")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
        _resolve_padding(padding, self.kernel_size, self.stride, self.dilation)  # validate now, not at first call
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", minimum=0)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.memory_efficient = memory_efficient
        _three_filters(self, (out_channels, in_channels // groups, *self.kernel_size), bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_three(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quadra_conv2d(x, self.weight_a, self.weight_b, self.weight_c, self.bias_a, self.bias_b, self.bias_c,
                             self.stride, self.padding, self.dilation, self.groups, self.memory_efficient)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias_a is not None}, memory_efficient={self.memory_efficient}")


# --- fully connected ------------------------------------------------------------------------------------------------


def _cat_bias(bs: tuple[torch.Tensor | None, ...], like: torch.Tensor) -> torch.Tensor | None:
    if all(b is None for b in bs):
        return None
    return torch.cat([like.new_zeros(like.shape[0]) if b is None else b for b in bs])


class _QuadraLinearFn(torch.autograd.Function):
    """a(x) * b(x) + c(x) on (..., in_features), keeping only x and the weights for backward."""

    @staticmethod
    def forward(ctx, x, wa, wb, wc, ba, bb, bc):
        a, b, c = F.linear(x, torch.cat([wa, wb, wc]), _cat_bias((ba, bb, bc), wa)).chunk(3, -1)
        ctx.save_for_backward(x, wa, wb, wc, ba, bb)
        y = a * b
        y += c
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, wa, wb, wc, ba, bb = ctx.saved_tensors
        need = ctx.needs_input_grad
        a, b = F.linear(x, torch.cat([wa, wb]), _cat_bias((ba, bb), wa)).chunk(2, -1)
        gs = torch.cat([g * b, g * a, g], -1).reshape(-1, 3 * wa.shape[0])
        del a, b
        gx = (gs @ torch.cat([wa, wb, wc])).reshape(x.shape) if need[0] else None
        gw = gs.t() @ x.reshape(-1, x.shape[-1]) if any(need[1:4]) else None
        gwa, gwb, gwc = gw.chunk(3) if gw is not None else (None,) * 3
        gba, gbb, gbc = gs.sum(0).chunk(3) if any(need[4:7]) else (None,) * 3
        grads = (gx, gwa, gwb, gwc, gba, gbb, gbc)
        return tuple(gr if n else None for gr, n in zip(grads, need, strict=True))


def quadra_linear(x: torch.Tensor, w_a: torch.Tensor, w_b: torch.Tensor, w_c: torch.Tensor,
                  b_a: torch.Tensor | None = None, b_b: torch.Tensor | None = None, b_c: torch.Tensor | None = None,
                  memory_efficient: bool = True) -> torch.Tensor:
    """Quadratic fully connected layer a(x) * b(x) + c(x) on (..., in_features); weights (out, in), biases (out,).

    ``memory_efficient`` as in ``quadra_conv2d``.
    """
    _check_filters((w_a, w_b, w_c), (b_a, b_b, b_c))
    if x.shape[-1] != w_a.shape[1]:
        raise ValueError(f"input has {x.shape[-1]} features in its last dim but the weights expect {w_a.shape[1]}")
    ws, bs = (w_a, w_b, w_c), (b_a, b_b, b_c)
    if not torch.is_grad_enabled():
        a, b, c = F.linear(x, torch.cat(ws), _cat_bias(bs, w_a)).chunk(3, -1)
    elif memory_efficient:
        dtype = _autocast_dtype(x)
        if dtype is None:
            return _QuadraLinearFn.apply(x, *ws, *bs)
        with torch.autocast(x.device.type, enabled=False):
            return _QuadraLinearFn.apply(*_cast((x, *ws, *bs), dtype))
    else:
        a, b, c = (F.linear(x, w, bias) for w, bias in zip(ws, bs, strict=True))
    y = a * b
    return y + c


class QuadraLinear(nn.Module):
    """Low-rank quadratic fully connected layer on (..., in_features): a(x) * b(x) + c(x).

    Parameters ``weight_a/b/c`` (out_features, in_features) and ``bias_a/b/c`` (out_features,): three times an
    ``nn.Linear``. Initialisation and ``memory_efficient`` as in ``QuadraConv2d``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, memory_efficient: bool = True):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"QuadraLinear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features, self.memory_efficient = in_features, out_features, memory_efficient
        _three_filters(self, (out_features, in_features), bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_three(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quadra_linear(x, self.weight_a, self.weight_b, self.weight_c, self.bias_a, self.bias_b, self.bias_c,
                             self.memory_efficient)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias_a is not None}, "
                f"memory_efficient={self.memory_efficient}")
