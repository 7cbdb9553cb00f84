"""LayerNorm2d against F.layer_norm on the channels-last view."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chipfit.layers import LayerNorm2d


def test_layernorm2d_is_layernorm_over_channels():
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.uniform_()
        ln.bias.uniform_()
    x = torch.randn(2, 6, 4, 5) * 3 + 1
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]


def test_layernorm2d_normalises_each_pixel():
    y = LayerNorm2d(16)(torch.randn(3, 16, 5, 5) * 4 + 2)
    torch.testing.assert_close(y.mean(1), torch.zeros(3, 5, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(3, 5, 5), atol=1e-4, rtol=0)


def test_layernorm2d_wrong_channels():
    with pytest.raises(ValueError, match=r"expects \(N, 6, H, W\), got shape \(2, 5, 4, 4\)"):
        LayerNorm2d(6)(torch.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match="num_channels must be a positive int, got 0"):
        LayerNorm2d(0)
