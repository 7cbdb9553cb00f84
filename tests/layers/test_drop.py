"""DropPath and LayerScale: identities, expectations and shapes."""

from __future__ import annotations

import pytest
import torch

from chipfit.layers import DropPath, LayerScale


def test_droppath_identity_in_eval_and_at_zero():
    x = torch.randn(8, 3, 2, 2)
    dp = DropPath(0.3).eval()
    assert dp(x) is x
    assert DropPath(0.0).train()(x) is x


def test_droppath_drops_whole_samples_and_preserves_the_mean():
    torch.manual_seed(0)
    dp = DropPath(0.3).train()
    x = torch.ones(20000, 2, 3)
    y = dp(x)
    per_sample = y.flatten(1)
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # one decision per sample
    vals = y.unique()
    assert len(vals) == 2 and vals[0] == 0 and torch.isclose(vals[1], torch.tensor(1 / 0.7))
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.3) < 0.015  # ~4.5 standard deviations
    assert abs(y.mean().item() - 1.0) < 0.02


def test_droppath_bad_probability():
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match=f"got {p}"):
            DropPath(p)


def test_layerscale_shapes_and_values():
    ls = LayerScale(4, 1e-6)
    assert ls.gamma.shape == (4, 1, 1)
    torch.testing.assert_close(ls(torch.ones(1, 4, 2, 2)), torch.full((1, 4, 2, 2), 1e-6))
    last = LayerScale(4, 0.5, channels_first=False)
    assert last.gamma.shape == (4,)
    with torch.no_grad():
        last.gamma.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(last(torch.ones(2, 3, 4)), torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(2, 3, 4))
