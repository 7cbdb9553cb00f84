"""An independent MAC counter for the zoo's tests: forward hooks on the layers that multiply-accumulate.

Deliberately not chipfit.cost: it cross-checks that engine and the published sizes from outside. A MAC is one
multiply-add. Counted: nn.Conv2d (output elements x in_channels / groups x kh x kw), nn.Linear (output elements x
in_features), quadratic layers (three such filters each; the Hadamard product a * b + c is one more multiply-add per
output element, reported apart), and window attention's two matmuls (q k^T and attn v: tokens x window^2 x C each,
on the zero-padded map). Element-wise ops, norms and pooling are not MACs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from chipfit.layers import QuadraConv2d, QuadraLinear, WindowAttention


@dataclass
class Count:
    macs: int = 0  # convs, linears, attention matmuls, the three filters of each quadratic layer
    hadamard: int = 0  # the a * b + c of quadratic layers, one multiply-add per output element


def _conv_macs(out: torch.Tensor, cin: int, groups: int, kernel: tuple[int, int]) -> int:
    return out.numel() * (cin // groups) * kernel[0] * kernel[1]


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> Count:
    """MACs of one forward pass at ``input_shape`` (on the meta device when the model is there: no arithmetic)."""
    total = Count()

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            total.macs += _conv_macs(out, m.in_channels, m.groups, m.kernel_size)
        elif isinstance(m, nn.Linear):
            total.macs += out.numel() * m.in_features
        elif isinstance(m, QuadraConv2d):
            total.macs += 3 * _conv_macs(out, m.in_channels, m.groups, m.kernel_size)
            total.hadamard += out.numel()
        elif isinstance(m, QuadraLinear):
            total.macs += 3 * out.numel() * m.in_features
            total.hadamard += out.numel()
        elif isinstance(m, WindowAttention):
            n, c, h, w = inputs[0].shape
            ws = min(m.window_size, h, w)  # windows clamp to small maps
            tokens = math.ceil(h / ws) * ws * math.ceil(w / ws) * ws
            total.macs += 2 * n * tokens * ws * ws * c

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, QuadraConv2d, QuadraLinear, WindowAttention))]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return total
