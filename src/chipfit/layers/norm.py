"""LayerNorm for channels-first (N, C, H, W) maps."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first map: one normalisation per pixel, per-channel weight and bias.

    Equal to ``nn.LayerNorm(num_channels)`` applied to the map permuted to channels-last. The result is returned in
    the (N, C, H, W) shape with channels-last strides; convolutions accept either.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6):
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"LayerNorm2d: num_channels must be a positive int, got {num_channels!r}")
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.normalized_shape[0]:
            raise ValueError(f"LayerNorm2d({self.normalized_shape[0]}) expects (N, {self.normalized_shape[0]}, H, W), "
                             f"got shape {tuple(x.shape)}")
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)
