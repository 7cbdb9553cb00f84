"""Spatial mixers: closed forms, hand-written references and the errors for impossible configurations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from chipfit.layers import MIXERS, DWConvMixer, GnConv, QuadraConv2d, QuadraMixer, WindowAttention, build_mixer


def _params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# --- gnConv ---------------------------------------------------------------------------------------------------------


def test_gnconv_parameters_closed_form():
    # dims [16, 32, 64]: proj_in 64->128, dwconv 7x7 on 112 channels, pws 16->32 and 32->64, proj_out 64->64
    expected = (64 * 128 + 128) + (112 * 49 + 112) + (16 * 32 + 32) + (32 * 64 + 64) + (64 * 64 + 64)
    assert expected == 20736
    g = GnConv(64, order=3, kernel_size=7)
    assert g.dims == [16, 32, 64]
    assert _params(g) == expected
    assert g(torch.randn(1, 64, 8, 8)).shape == (1, 64, 8, 8)


def test_gnconv_order_one_is_p0_times_dw():
    g = GnConv(8, order=1, kernel_size=3)
    x = torch.randn(1, 8, 5, 5)
    p0, rest = g.proj_in(x).split(8, 1)
    torch.testing.assert_close(g(x), g.proj_out(p0 * (g.dwconv(rest) / 3)))


def test_gnconv_order_two_recursion():
    g = GnConv(8, order=2, kernel_size=3, scale=0.5)
    x = torch.randn(2, 8, 5, 5)
    proj = g.proj_in(x)
    p0, rest = proj[:, :4], proj[:, 4:]
    dw = g.dwconv(rest) * 0.5
    ref = g.proj_out(g.pws[0](p0 * dw[:, :4]) * dw[:, 4:])
    torch.testing.assert_close(g(x), ref)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(dim=24, order=5), "order too high for the width: dim 24 .* order 5"),
    (dict(dim=24, order=0), "order must be an int >= 1, got order 0 .dim 24."),
    (dict(dim=24, order=2, kernel_size=4), "kernel_size must be an odd positive int.*got 4"),
])
def test_gnconv_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GnConv(**kwargs)


# --- window attention -----------------------------------------------------------------------------------------------


def _region(i: torch.Tensor, size: int, ws: int, shift: int) -> torch.Tensor:
    """Swin's three strips along one axis of the rolled map: [0, size-ws), [size-ws, size-shift), [size-shift, size)."""
    return (i >= size - ws).long() + (i >= size - shift).long()


def _brute_force(wa: WindowAttention, x: torch.Tensor, ws: int, shift: int) -> torch.Tensor:
    """Attention over all pixels of the padded, rolled map, masked pixel pair by pixel pair."""
    n, c, h, w = x.shape
    heads, d, big = wa.num_heads, c // wa.num_heads, wa.window_size
    y = F.pad(x, (0, (-w) % ws, 0, (-h) % ws))
    hp, wp = y.shape[2:]
    y = torch.roll(y, (-shift, -shift), (2, 3))
    q, k, v = wa.qkv(y.flatten(2).transpose(1, 2)).reshape(n, hp * wp, 3, heads, d).permute(2, 0, 3, 1, 4)
    r, col = torch.arange(hp).repeat_interleave(wp), torch.arange(wp).repeat(hp)
    same_window = ((r // ws)[:, None] == (r // ws)[None]) & ((col // ws)[:, None] == (col // ws)[None])
    region = _region(r, hp, ws, shift) * 3 + _region(col, wp, ws, shift) if shift else torch.zeros_like(r)
    dr = (r % ws)[:, None] - (r % ws)[None] + big - 1
    dc = (col % ws)[:, None] - (col % ws)[None] + big - 1
    bias = wa.rel_bias[dr * (2 * big - 1) + dc].permute(2, 0, 1)  # heads x P x P
    scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias - 100.0 * (region[:, None] != region[None]).float()
    att = scores.masked_fill(~same_window, float("-inf")).softmax(-1) @ v
    out = wa.proj(att.transpose(1, 2).reshape(n, hp * wp, c)).transpose(1, 2).reshape(n, c, hp, wp)
    return torch.roll(out, (shift, shift), (2, 3))[:, :, :h, :w]


def test_window_attention_one_window_equals_plain_attention():
    torch.manual_seed(0)
    wa = WindowAttention(8, num_heads=2, window_size=4)
    with torch.no_grad():
        wa.rel_bias.zero_()
    x = torch.randn(1, 8, 4, 4)
    tokens = x.flatten(2).transpose(1, 2)  # 1 x 16 x 8
    q, k, v = wa.qkv(tokens).reshape(1, 16, 3, 2, 4).permute(2, 0, 3, 1, 4)
    att = (q @ k.transpose(-1, -2) / 2.0).softmax(-1) @ v  # scale 1/sqrt(head_dim 4)
    ref = wa.proj(att.transpose(1, 2).reshape(1, 16, 8)).transpose(1, 2).reshape(1, 8, 4, 4)
    torch.testing.assert_close(wa(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("h", "w", "shift"), [(4, 4, 0), (8, 8, 0), (8, 8, 2), (6, 7, 2), (9, 5, 1)])
def test_window_attention_matches_brute_force(h, w, shift):
    torch.manual_seed(0)
    wa = WindowAttention(8, num_heads=2, window_size=4, shift_size=shift).double()
    with torch.no_grad():
        wa.rel_bias.normal_()  # large enough to matter
    x = torch.randn(2, 8, h, w, dtype=torch.double)
    torch.testing.assert_close(wa(x), _brute_force(wa, x, 4, shift if min(h, w) > 4 else 0))


def test_window_clamped_to_a_small_map():
    """A 3x3 map under a 4x4 shifted window is one 3x3 window, unshifted, with the same offsets' biases."""
    torch.manual_seed(0)
    big, small = WindowAttention(8, 2, window_size=4, shift_size=2), WindowAttention(8, 2, window_size=3)
    small.qkv.load_state_dict(big.qkv.state_dict())
    small.proj.load_state_dict(big.proj.state_dict())
    with torch.no_grad():
        for dr in range(-2, 3):
            for dc in range(-2, 3):
                small.rel_bias[(dr + 2) * 5 + dc + 2] = big.rel_bias[(dr + 3) * 7 + dc + 3]
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(big(x), small(x))


def test_window_attention_runs_scaled_dot_product_attention():
    seen = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    wa = WindowAttention(16, 2, window_size=4, shift_size=2)
    with Record():
        wa(torch.randn(1, 16, 8, 8))
    assert F.scaled_dot_product_attention in seen


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(dim=16, num_heads=2, window_size=8, input_resolution=7), "window larger than the map .window 8, map 7x7"),
    (dict(dim=16, num_heads=2, window_size=8, input_resolution=(14, 7)), "window larger than the map"),
    (dict(dim=10, num_heads=3), "dim 10 must be divisible by num_heads 3"),
    (dict(dim=16, num_heads=2, window_size=4, shift_size=4), "shift_size 4 must lie in"),
])
def test_window_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowAttention(**kwargs)


# --- convolutional mixers and the builder ---------------------------------------------------------------------------


def test_conv_mixers_keep_shape_and_count():
    x = torch.randn(2, 8, 6, 6)
    dw, quad = DWConvMixer(8, 5), QuadraMixer(8, 5)
    assert dw(x).shape == quad(x).shape == x.shape
    assert _params(dw) == 8 * 25 + 8
    assert _params(quad) == 3 * (8 * 25 + 8)
    assert isinstance(quad, QuadraConv2d) and quad.groups == 8 and quad.memory_efficient
    with pytest.raises(ValueError, match="odd positive int.*got 4"):
        QuadraMixer(8, 4)


def test_build_mixer_kinds_and_shared_options():
    # one dict for every kind, as a block builder passes it: each mixer takes its own options
    opts = dict(kernel_size=3, memory_efficient=False, order=2, num_heads=2, window_size=4, shift_size=2,
                input_resolution=8, scale=None)
    expected = {"quadra": QuadraMixer, "gnconv": GnConv, "window_attention": WindowAttention, "dwconv": DWConvMixer,
                "none": torch.nn.Identity}
    assert set(expected) == set(MIXERS)
    x = torch.randn(1, 16, 8, 8)
    for kind, cls in expected.items():
        m = build_mixer(kind, 16, **opts)
        assert type(m) is cls
        assert m(x).shape == x.shape
    assert build_mixer("quadra", 16, **opts).memory_efficient is False
    assert build_mixer("gnconv", 16, **opts).order == 2
    assert build_mixer("window_attention", 64).num_heads == 2  # dim // 32


def test_build_mixer_errors():
    with pytest.raises(ValueError, match="unknown mixer 'attn'; choose one of quadra, gnconv"):
        build_mixer("attn", 8)
    with pytest.raises(TypeError, match="unknown option.*kernel"):
        build_mixer("dwconv", 8, kernel=3)
