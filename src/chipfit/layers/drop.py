"""Residual-branch regularisers: stochastic depth (DropPath) and layer scale."""

from __future__ import annotations

import torch
import torch.nn as nn


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch for a random subset of samples and scale the rest by 1/keep.

    Identity in eval mode and when ``drop_prob`` is 0. Each sample (first dim) is kept with probability
    keep = 1 - drop_prob, so the expected output equals the input.
    """

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"DropPath: drop_prob must lie in [0, 1), got {drop_prob}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerScale(nn.Module):
    """Multiply by a learnable per-channel gamma, initialised to ``init_value`` (small, so deep nets start tame).

    Args:
        dim: number of channels.
        init_value: initial gamma (1e-6 in QuadraNet, HorNet and ConvNeXt).
        channels_first: gamma has shape (dim, 1, 1) for (N, C, H, W) maps, else (dim,) for channels-last input.
    """

    def __init__(self, dim: int, init_value: float = 1e-6, channels_first: bool = True):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"LayerScale: dim must be a positive int, got {dim!r}")
        self.gamma = nn.Parameter(torch.full((dim, 1, 1) if channels_first else (dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma

    def extra_repr(self) -> str:
        return f"dim={self.gamma.shape[0]}, channels_first={self.gamma.dim() == 3}"
