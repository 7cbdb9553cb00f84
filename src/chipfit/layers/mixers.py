"""Spatial mixers on channels-first (N, C, H, W) maps: what a block uses to let pixels talk to each other.

- ``QuadraMixer``: depthwise quadratic convolution (QuadraNet).
- ``GnConv``: HorNet's recursive gated convolution of order n (Rao et al., NeurIPS 2022).
- ``WindowAttention``: Swin's (shifted) window self-attention with relative position bias (Liu et al., ICCV 2021).
- ``DWConvMixer``: a plain depthwise convolution (ConvNeXt's, and the paper's ConvBlock).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.layers.quadratic import QuadraConv2d


class QuadraMixer(QuadraConv2d):
    """Depthwise k x k quadratic convolution, size-preserving."""

    def __init__(self, dim: int, kernel_size: int = 7, memory_efficient: bool = True):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim,
                         memory_efficient=memory_efficient)


class DWConvMixer(nn.Conv2d):
    """Depthwise k x k convolution, size-preserving."""

    def __init__(self, dim: int, kernel_size: int = 7):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)


class GnConv(nn.Module):
    """Recursive gated convolution of order ``order``.

    Widths dims = [C/2^(n-1), ..., C/2, C]. proj_in (1x1, C -> 2C) splits into p0 (dims[0]) and the rest (sum(dims)),
    which goes through ONE depthwise k x k conv, is scaled by ``scale`` and split per dims. Then x = p0 * dw[0] and
    x = pw[i](x) * dw[i+1] for i < n-1; proj_out (1x1, C -> C). Each order waits for the previous one.
    """

    def __init__(self, dim: int, order: int = 3, kernel_size: int = 7, scale: float = 1 / 3):
        super().__init__()
        if order < 1 or dim % (2 ** (order - 1)):
            raise ValueError(f"gnConv order too high for the width: dim {dim} must be divisible by 2^(order-1) = "
                             f"{2 ** max(order - 1, 0)} (order {order})")
        self.order, self.scale = order, scale
        self.dims = [dim // 2 ** (order - 1 - i) for i in range(order)]
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.dwconv = nn.Conv2d(sum(self.dims), sum(self.dims), kernel_size, padding=kernel_size // 2,
                                groups=sum(self.dims))
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p0, rest = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)), dim=1)
        dw = torch.split(self.dwconv(rest) * self.scale, self.dims, dim=1)
        y = p0 * dw[0]
        for i, pw in enumerate(self.pws):
            y = pw(y) * dw[i + 1]
        return self.proj_out(y)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, optionally shifted by ``shift_size``.

    Maps smaller than the window get one window the size of the map and no shift (as Swin does); maps that are not
    a multiple of the window are zero-padded.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 input_resolution: int | tuple[int, int] | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"WindowAttention: dim {dim} must be divisible by num_heads {num_heads}")
        if not 0 <= shift_size < window_size:
            raise ValueError(f"WindowAttention: shift_size {shift_size} must lie in [0, window_size {window_size})")
        if input_resolution is not None:
            res = (input_resolution,) * 2 if isinstance(input_resolution, int) else tuple(input_resolution)
            if window_size > max(res):
                raise ValueError(f"WindowAttention: window larger than the map (window {window_size}, map "
                                 f"{res[0]}x{res[1]}); use a window of at most {max(res)}")
        self.dim, self.heads, self.window, self.shift = dim, num_heads, window_size, shift_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        rel = (coords.flatten(1)[:, :, None] - coords.flatten(1)[:, None, :]) + (window_size - 1)
        self.register_buffer("rel_index", rel[0] * (2 * window_size - 1) + rel[1], persistent=False)

    def _bias(self, ws: int) -> torch.Tensor:
        if ws == self.window:
            idx = self.rel_index
        else:  # a window clamped to a small map: positions of the top-left ws x ws corner
            keep = torch.arange(self.window)[:ws]
            sel = (keep[:, None] * self.window + keep[None, :]).flatten()
            idx = self.rel_index[sel][:, sel]
        return self.rel_bias[idx.reshape(-1)].reshape(ws * ws, ws * ws, self.heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        ws = min(self.window, h, w)
        shift = self.shift if ws == self.window else 0
        y = x.permute(0, 2, 3, 1)
        ph, pw = (-h) % ws, (-w) % ws
        if ph or pw:
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
        win = y.reshape(n, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        q, k, v = self.qkv(win).reshape(-1, ws * ws, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self._bias(ws).unsqueeze(0)  # 1 x heads x L x L
        if shift:
            mask = self._shift_mask(hp, wp, ws, shift, x.device)  # nW x L x L
            bias = (bias + mask.unsqueeze(1)).repeat(n, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        out = self.proj(out.transpose(1, 2).reshape(-1, ws * ws, c))
        y = out.reshape(n, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, c)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        return y[:, :h, :w].permute(0, 3, 1, 2)

    @staticmethod
    def _shift_mask(hp: int, wp: int, ws: int, shift: int, device) -> torch.Tensor:
        region = torch.zeros(hp, wp, device=device)
        cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        label = 0
        for hs in cuts:
            for wsl in cuts:
                region[hs, wsl] = label
                label += 1
        win = region.reshape(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
        diff = win[:, None, :] - win[:, :, None]
        return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


MIXERS = ("quadra", "gnconv", "window_attention", "dwconv", "none")


def build_mixer(kind: str, dim: int, **opts) -> nn.Module:
    """A spatial mixer by name: quadra, gnconv, window_attention, dwconv or none."""
    if kind == "quadra":
        return QuadraMixer(dim, opts.get("kernel_size", 7), opts.get("memory_efficient", True))
    if kind == "gnconv":
        return GnConv(dim, opts.get("order", 3), opts.get("kernel_size", 7))
    if kind == "window_attention":
        return WindowAttention(dim, opts.get("num_heads", max(dim // 32, 1)), opts.get("window_size", 7),
                               opts.get("shift_size", 0), opts.get("input_resolution"))
    if kind == "dwconv":
        return DWConvMixer(dim, opts.get("kernel_size", 7))
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown mixer {kind!r}; choose one of {', '.join(MIXERS)}")
