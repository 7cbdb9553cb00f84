"""Blocks against their definitions: shapes, closed-form parameter counts, what mixes space and what does not."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from chipfit.layers import QuadraConv2d
from chipfit.models.blocks import ConvNeXtBlock, InvertedResidual, MetaBlock, ShuffleUnit, channel_shuffle
from chipfit.models.config import BlockConfig


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _mlp_params(c: int, r: int = 4) -> int:
    return c * r * c + r * c + r * c * c + c


@pytest.mark.parametrize("kind", ["quadra", "hor", "swin", "conv", "skip"])
def test_meta_blocks_keep_the_shape_and_backpropagate(kind):
    block = MetaBlock(32, BlockConfig(kind, kernel_size=3, window_size=4, order=3, layer_scale=1.0),
                      shift=kind == "swin", input_resolution=8)
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_quadra_block_parameters_in_closed_form():
    c = 64
    block = MetaBlock(c, BlockConfig("quadra", kernel_size=7))
    norms, gammas = 2 * 2 * c, 2 * c
    mixer = 3 * (c * 49 + c)  # three depthwise 7x7 filters with biases
    assert _params(block) == norms + gammas + mixer + _mlp_params(c)
    assert isinstance(block.mixer, QuadraConv2d) and block.mixer.groups == c
    assert torch.all(block.gamma1.gamma == 1e-6) and torch.all(block.gamma2.gamma == 1e-6)


def test_quadratic_channel_mixing_makes_the_first_mlp_layer_quadratic():
    c = 16
    plain = MetaBlock(c, BlockConfig("quadra"))
    qfc = MetaBlock(c, BlockConfig("quadra", quadratic_channel_mixing=True))
    assert isinstance(qfc.pw1, QuadraConv2d) and qfc.pw1.kernel_size == (1, 1)
    assert _params(qfc) - _params(plain) == 2 * (c * 4 * c + 4 * c)  # two more C -> 4C filters with biases
    x = torch.randn(1, c, 5, 5)
    assert qfc(x).shape == x.shape


def test_convnext_block_matches_convnext():
    c = 96
    block = ConvNeXtBlock(c, BlockConfig("convnext"))
    assert _params(block) == (c * 49 + c) + 2 * c + _mlp_params(c) + c  # dwconv, one norm, MLP, one gamma


def _spread(block: nn.Module, c: int = 8) -> torch.Tensor:
    """Which pixels an impulse at the centre reaches."""
    block.eval()
    x = torch.zeros(1, c, 9, 9)
    x[0, :, 4, 4] = torch.linspace(-1, 1, c)  # channels must differ, or LayerNorm erases the impulse
    with torch.no_grad():
        y = block(x) - block(torch.zeros_like(x))
    return (y.abs().sum(1)[0] > 1e-7)


@pytest.mark.parametrize("kind, mixes", [("skip", False), ("conv", True), ("quadra", True), ("hor", True)])
def test_only_the_skip_block_leaves_space_unmixed(kind, mixes):
    torch.manual_seed(0)
    block = MetaBlock(8, BlockConfig(kind, kernel_size=3, order=2, layer_scale=1.0))
    for p in block.parameters():  # biases and weights away from zero so that every path carries signal
        nn.init.uniform_(p, 0.1, 0.5)
    reached = _spread(block)
    assert reached[4, 4]
    assert bool(reached.sum() > 1) is mixes


def test_swin_blocks_shift_only_when_asked():
    cfg = BlockConfig("swin", window_size=4, num_heads=2)
    assert MetaBlock(16, cfg, shift=True, input_resolution=8).mixer.shift_size == 2
    assert MetaBlock(16, cfg, shift=False, input_resolution=8).mixer.shift_size == 0


def test_meta_block_rejects_other_kinds():
    with pytest.raises(ValueError, match="MetaBlock takes the kinds quadra, hor, swin, conv, skip, got 'mbv2'"):
        MetaBlock(8, BlockConfig("mbv2"))


@pytest.mark.parametrize("cin, cout, stride, t, residual", [(16, 16, 1, 6, True), (16, 24, 2, 6, False),
                                                             (16, 24, 1, 6, False), (32, 16, 1, 1, False)])
def test_inverted_residual(cin, cout, stride, t, residual):
    block = InvertedResidual(cin, cout, stride, t)
    h = cin * t
    expand = 0 if t == 1 else cin * h + 2 * h
    assert _params(block) == expand + (9 * h + 2 * h) + (h * cout + 2 * cout)
    assert block.residual is residual
    assert block(torch.randn(2, cin, 8, 8)).shape == (2, cout, 8 // stride, 8 // stride)


def test_shuffle_units():
    down = ShuffleUnit(24, 48, 2)
    half = 24
    left = (9 * 24 + 2 * 24) + (24 * half + 2 * half)
    right = (24 * half + 2 * half) + (9 * half + 2 * half) + (half * half + 2 * half)
    assert _params(down) == left + right
    assert down(torch.randn(2, 24, 8, 8)).shape == (2, 48, 4, 4)
    keep = ShuffleUnit(48, 48, 1)
    x = torch.randn(2, 48, 4, 4)
    assert keep(x).shape == x.shape
    with pytest.raises(ValueError, match="stride 1 needs in == out channels, got 24 -> 48"):
        ShuffleUnit(24, 48, 1)


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
