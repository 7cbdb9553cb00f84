"""Mixers and norms: closed forms and reference computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chipfit.layers import DropPath, GnConv, LayerNorm2d, LayerScale, WindowAttention, build_mixer


def test_layernorm2d_is_layernorm_over_channels():
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.uniform_()
        ln.bias.uniform_()
    x = torch.randn(2, 6, 4, 5)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)


def test_gnconv_parameters_closed_form():
    dim, order, k = 64, 3, 7
    dims = [16, 32, 64]
    expected = (dim * 2 * dim + 2 * dim) + (sum(dims) * k * k + sum(dims)) + sum(
        dims[i] * dims[i + 1] + dims[i + 1] for i in range(order - 1)) + (dim * dim + dim)
    g = GnConv(dim, order, k)
    assert sum(p.numel() for p in g.parameters()) == expected
    assert g(torch.randn(1, dim, 8, 8)).shape == (1, dim, 8, 8)


def test_gnconv_order_one_is_p0_times_dw():
    g = GnConv(8, order=1, kernel_size=3)
    x = torch.randn(1, 8, 5, 5)
    p0, rest = g.proj_in(x).split(8, 1)
    torch.testing.assert_close(g(x), g.proj_out(p0 * g.dwconv(rest) * g.scale))


def test_gnconv_order_too_high():
    with pytest.raises(ValueError, match="order too high for the width.*dim 24"):
        GnConv(24, order=5)


def test_window_attention_one_window_equals_plain_attention():
    torch.manual_seed(0)
    wa = WindowAttention(8, num_heads=2, window_size=4)
    with torch.no_grad():
        wa.rel_bias.zero_()
    x = torch.randn(1, 8, 4, 4)
    tokens = x.flatten(2).transpose(1, 2)  # 1 x 16 x 8
    q, k, v = wa.qkv(tokens).reshape(1, 16, 3, 2, 4).permute(2, 0, 3, 1, 4)
    att = (q @ k.transpose(-1, -2) / 2.0).softmax(-1) @ v  # scale 1/sqrt(4)
    ref = wa.proj(att.transpose(1, 2).reshape(1, 16, 8)).transpose(1, 2).reshape(1, 8, 4, 4)
    torch.testing.assert_close(wa(x), ref, rtol=1e-5, atol=1e-5)


def test_shifted_windows_keep_shape_and_pad_odd_maps():
    wa = WindowAttention(16, 2, window_size=4, shift_size=2)
    for h, w in ((8, 8), (10, 9), (3, 3)):
        assert wa(torch.randn(2, 16, h, w)).shape == (2, 16, h, w)


def test_window_errors():
    with pytest.raises(ValueError, match="window larger than the map"):
        WindowAttention(16, 2, window_size=8, input_resolution=7)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        WindowAttention(10, 3)


def test_droppath_identity_in_eval_and_mean_preserving_in_train():
    dp = DropPath(0.3)
    x = torch.ones(20000, 1)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    torch.manual_seed(0)
    y = dp(x)
    vals = y.unique()
    assert len(vals) == 2 and vals[0] == 0 and torch.isclose(vals[1], torch.tensor(1 / 0.7))
    assert abs(y.mean().item() - 1.0) < 0.02


def test_layerscale_and_build_mixer():
    ls = LayerScale(4, 1e-6)
    assert torch.allclose(ls(torch.ones(1, 4, 2, 2)), torch.full((1, 4, 2, 2), 1e-6))
    with pytest.raises(ValueError, match="unknown mixer 'attn'"):
        build_mixer("attn", 8)
    assert isinstance(build_mixer("none", 8), torch.nn.Identity)
