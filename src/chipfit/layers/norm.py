"""Normalisation, stochastic depth and layer scale for channels-first (N, C, H, W) maps."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first map (one normalisation per pixel)."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a random subset of samples, rescaling the rest by 1/keep."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0 <= drop_prob < 1:
            raise ValueError(f"DropPath: drop_prob must lie in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerScale(nn.Module):
    """Multiply by a learnable per-channel gamma (initialised small, e.g. 1e-6, so deep residual nets start tame)."""

    def __init__(self, dim: int, init_value: float = 1e-6, channels_first: bool = True):
        super().__init__()
        shape = (dim, 1, 1) if channels_first else (dim,)
        self.gamma = nn.Parameter(torch.full(shape, float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
