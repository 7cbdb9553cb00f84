"""Spatial mixers on channels-first (N, C, H, W) maps: what a block uses to let pixels talk to each other.

- ``QuadraMixer``: depthwise quadratic convolution (QuadraNet).
- ``GnConv``: HorNet's recursive gated convolution of order n (Rao et al., NeurIPS 2022).
- ``WindowAttention``: Swin's (shifted) window self-attention with relative position bias (Liu et al., ICCV 2021).
- ``DWConvMixer``: a plain depthwise convolution (ConvNeXt's, and the paper's ConvBlock).

All keep the shape: (N, dim, H, W) in, (N, dim, H, W) out. ``build_mixer`` makes one by name.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.layers.quadratic import QuadraConv2d


def _odd_kernel(who: str, kernel_size: int) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{who}: kernel_size must be an odd positive int so that the map keeps its size, "
                         f"got {kernel_size!r}")


class QuadraMixer(QuadraConv2d):
    """Depthwise k x k quadratic convolution with padding k // 2 (QuadraBlock's spatial mixer)."""

    def __init__(self, dim: int, kernel_size: int = 7, memory_efficient: bool = True):
        _odd_kernel("QuadraMixer", kernel_size)
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim,
                         memory_efficient=memory_efficient)


class DWConvMixer(nn.Conv2d):
    """Depthwise k x k convolution with bias and padding k // 2 (ConvNeXt's, and ConvBlock's spatial mixer)."""

    def __init__(self, dim: int, kernel_size: int = 7):
        _odd_kernel("DWConvMixer", kernel_size)
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)


class GnConv(nn.Module):
    """Recursive gated convolution of order ``order`` (HorNet's gnConv).

    Widths dims = [dim / 2^(n-1), ..., dim / 2, dim]. proj_in (1x1, dim -> 2 dim) splits into p0 (dims[0] channels)
    and the rest (sum(dims)), which goes through ONE depthwise k x k conv (with bias), is scaled by ``scale`` and
    split per dims into dw[0..n-1]. Then x = p0 * dw[0] and x = pw[i](x) * dw[i+1] with 1x1 convs dims[i] ->
    dims[i+1]; proj_out (1x1, dim -> dim). Each order waits for the previous one (the serial dependency QuadraNet
    criticises).

    Attributes:
        dims: the widths per order.
        proj_in, dwconv, pws, proj_out: the convolutions, all with bias.
    """

    def __init__(self, dim: int, order: int = 3, kernel_size: int = 7, scale: float = 1 / 3):
        super().__init__()
        if not isinstance(order, int) or order < 1:
            raise ValueError(f"GnConv: order must be an int >= 1, got order {order!r} (dim {dim})")
        if not isinstance(dim, int) or dim < 1 or dim % 2 ** (order - 1):
            raise ValueError(f"gnConv order too high for the width: dim {dim} must be divisible by 2^(order-1) = "
                             f"{2 ** (order - 1)} for order {order}; lower the order or use a multiple of "
                             f"{2 ** (order - 1)} channels")
        _odd_kernel("GnConv", kernel_size)
        self.order, self.scale = order, scale
        self.dims = [dim // 2 ** (order - 1 - i) for i in range(order)]
        rest = sum(self.dims)
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.dwconv = nn.Conv2d(rest, rest, kernel_size, padding=kernel_size // 2, groups=rest)
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p0, rest = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)), dim=1)
        dw = torch.split(self.dwconv(rest) * self.scale, self.dims, dim=1)
        y = p0 * dw[0]
        for i, pw in enumerate(self.pws):
            y = pw(y) * dw[i + 1]
        return self.proj_out(y)

    def extra_repr(self) -> str:
        return f"order={self.order}, dims={self.dims}, scale={self.scale:.4g}"


class WindowAttention(nn.Module):
    """Swin's multi-head self-attention inside non-overlapping windows, optionally shifted, on channels-first maps.

    Each window of window_size x window_size pixels attends within itself, with a learned relative position bias
    per head ((2 w - 1)^2 entries, truncated normal std 0.02). With ``shift_size`` > 0 the map is rolled by
    -shift before windowing and back after, and an additive mask (-100, as Swin) keeps pixels that were not
    neighbours before the roll from attending to each other. Attention runs through
    ``F.scaled_dot_product_attention`` with bias + mask as ``attn_mask``, scaled by 1/sqrt(head_dim).

    Maps whose smaller side is at most the window get one window of that side and no shift, as Swin does (decided
    per forward call); maps that are not a multiple of the window are zero-padded at the bottom/right, and padded
    pixels are keys like any other (as in Swin).

    Args:
        dim: channels; must be divisible by ``num_heads``.
        num_heads: attention heads.
        window_size: window side in pixels.
        shift_size: roll in pixels, 0 <= shift_size < window_size (window_size // 2 in every other Swin block).
        input_resolution: the map size (int or (H, W)) if known at construction; then a window larger than the
            map is an error instead of being clamped.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 input_resolution: int | tuple[int, int] | None = None):
        super().__init__()
        for name, v in (("dim", dim), ("num_heads", num_heads), ("window_size", window_size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"WindowAttention: {name} must be a positive int, got {v!r}")
        if dim % num_heads:
            raise ValueError(f"WindowAttention: dim {dim} must be divisible by num_heads {num_heads}")
        if not isinstance(shift_size, int) or not 0 <= shift_size < window_size:
            raise ValueError(f"WindowAttention: shift_size {shift_size!r} must lie in [0, window_size "
                             f"{window_size})")
        if input_resolution is not None:
            res = (input_resolution,) * 2 if isinstance(input_resolution, int) else tuple(input_resolution)
            if window_size > min(res):
                raise ValueError(f"WindowAttention: window larger than the map (window {window_size}, map "
                                 f"{res[0]}x{res[1]}); use window_size <= {min(res)}")
        self.dim, self.num_heads, self.window_size, self.shift_size = dim, num_heads, window_size, shift_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        # rel_index[i, j]: the table row for the offset between window positions i and j (row-major)
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        rel = coords.flatten(1)[:, :, None] - coords.flatten(1)[:, None, :] + (window_size - 1)
        self.register_buffer("rel_index", rel[0] * (2 * window_size - 1) + rel[1], persistent=False)

    def _position_bias(self, ws: int) -> torch.Tensor:
        """(heads, ws^2, ws^2) relative position bias for a ws x ws window (ws <= window_size)."""
        idx = self.rel_index
        if ws != self.window_size:  # a window clamped to a small map: the top-left ws x ws positions, same offsets
            keep = torch.arange(ws, device=idx.device)
            sel = (keep[:, None] * self.window_size + keep[None, :]).flatten()
            idx = idx[sel][:, sel]
        return self.rel_bias[idx.reshape(-1)].reshape(ws * ws, ws * ws, self.num_heads).permute(2, 0, 1)

    @staticmethod
    def _shift_mask(hp: int, wp: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
        """(windows, ws^2, ws^2) additive mask: -100 between pixels from different regions of the rolled map."""
        region = torch.zeros(hp, wp, device=device)
        cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        for i, (rows, cols) in enumerate((r, c) for r in cuts for c in cuts):
            region[rows, cols] = i
        win = region.reshape(hp // ws, ws, wp // ws, ws).transpose(1, 2).reshape(-1, ws * ws)
        return (win[:, None, :] != win[:, :, None]).float() * -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if c != self.dim:
            raise ValueError(f"WindowAttention({self.dim}) got a map with {c} channels")
        ws = min(self.window_size, h, w)
        shift = self.shift_size if min(h, w) > self.window_size else 0
        y = x.permute(0, 2, 3, 1)
        ph, pw = (-h) % ws, (-w) % ws
        if ph or pw:
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
        nh, nw, L = hp // ws, wp // ws, ws * ws
        win = y.reshape(n, nh, ws, nw, ws, c).transpose(2, 3).reshape(n * nh * nw, L, c)
        qkv = self.qkv(win)
        # the heads' width is read off qkv's output: channel pruning may narrow the residual stream (this layer's
        # input and output) while the heads keep theirs
        inner = qkv.shape[-1] // 3
        q, k, v = qkv.reshape(-1, L, 3, self.num_heads, inner // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self._position_bias(ws).unsqueeze(0)  # 1 x heads x L x L, broadcast over windows
        if shift:
            mask = self._shift_mask(hp, wp, ws, shift, x.device).unsqueeze(1)  # windows x 1 x L x L
            bias = (bias + mask).repeat(n, 1, 1, 1)  # batch-major, as the windows are
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        out = self.proj(out.transpose(1, 2).reshape(-1, L, inner))
        cout = out.shape[-1]
        y = out.reshape(n, nh, nw, ws, ws, cout).transpose(2, 3).reshape(n, hp, wp, cout)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        return y[:, :h, :w].permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}, "
                f"shift_size={self.shift_size}")


MIXERS = ("quadra", "gnconv", "window_attention", "dwconv", "none")

# the options each kind takes; build_mixer ignores another kind's options so that one dict can describe any block
_MIXER_OPTIONS = {
    "quadra": ("kernel_size", "memory_efficient"),
    "gnconv": ("order", "kernel_size", "scale"),
    "window_attention": ("num_heads", "window_size", "shift_size", "input_resolution"),
    "dwconv": ("kernel_size",),
    "none": (),
}


def build_mixer(kind: str, dim: int, **opts) -> nn.Module:
    """A spatial mixer by name.

    Args:
        kind: one of ``MIXERS``: quadra (QuadraMixer), gnconv (GnConv), window_attention (WindowAttention; num_heads
            defaults to dim // 32, at least 1), dwconv (DWConvMixer) or none (nn.Identity).
        dim: channels.
        **opts: constructor options of the mixers (kernel_size, memory_efficient, order, scale, num_heads,
            window_size, shift_size, input_resolution). Options another kind takes are ignored, as are None values
            (the mixer's default then applies); a name no mixer takes is a TypeError.

    Returns:
        The mixer, mapping (N, dim, H, W) to (N, dim, H, W).
    """
    if kind not in _MIXER_OPTIONS:
        raise ValueError(f"unknown mixer {kind!r}; choose one of {', '.join(MIXERS)}")
    known = {name for names in _MIXER_OPTIONS.values() for name in names}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise TypeError(f"build_mixer: unknown option(s) {', '.join(unknown)}; mixers take {', '.join(sorted(known))}")
    kw = {k: v for k, v in opts.items() if k in _MIXER_OPTIONS[kind] and v is not None}
    if kind == "quadra":
        return QuadraMixer(dim, **kw)
    if kind == "gnconv":
        return GnConv(dim, **kw)
    if kind == "window_attention":
        kw.setdefault("num_heads", max(dim // 32, 1))
        return WindowAttention(dim, **kw)
    if kind == "dwconv":
        return DWConvMixer(dim, **kw)
    return nn.Identity()
