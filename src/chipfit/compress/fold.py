"""Folding BatchNorm into the conv or linear layer before it, exactly (to float rounding).

In eval mode BN computes y = g * (z - mu) / sqrt(var + eps) + beta = s * z + (beta - s * mu) with s = g / sqrt(var +
eps), per channel. For z = W x + b the folded layer has W' = s W (scaled along the output channel) and
b' = s (b - mu) + beta. A quadratic layer z = f_a(x) f_b(x) + f_c(x) folds too: s z = (s f_a(x)) f_b(x) + s f_c(x),
so f_a's weights and bias and f_c's weights are scaled by s, and f_c's bias becomes s (b_c - mu) + beta.

A pair is folded only where the data flow is certain: a conv/linear followed directly by a BatchNorm inside an
``nn.Sequential`` (the conv's output is the BN's only input). The BN becomes ``nn.Identity``, in place, so the
network keeps its class and ``config``.

Activations are fused for deployment where the deployment happens, not by rewriting the network: on the chip model,
``simulate(fuse=True)`` (``chipfit simulate --fuse``; the ``*_fused_*`` figures of a compression report) runs each
conv/linear with its activation and element-wise followers as one layer (the chains of ``chipfit.cost.fusion``); in
the exported file ONNX Runtime fuses Conv + Relu/Clip when it loads it. The fake-quant model already quantizes after
the activation (each quantizer sits on the input of the next conv/linear), which is the fused form's numerics.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from chipfit.layers import QuadraConv2d, QuadraLinear

FOLDABLE = (nn.Conv2d, nn.Linear, QuadraConv2d, QuadraLinear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def bn_scale(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """s = gamma / sqrt(var + eps): what folding multiplies the layer's output channels by."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it keeps no running statistics (track_running_stats=False)")
    return (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)


def bn_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.modules.batchnorm._BatchNorm]]:
    """The (layer, BatchNorm) pairs :func:`fold_bn` folds: a conv/linear followed directly by a BN in a Sequential."""
    out = []
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        mods = list(seq._modules.values())
        out += [(a, b) for a, b in zip(mods, mods[1:], strict=False) if isinstance(a, FOLDABLE) and isinstance(b, _BN)]
    return out


@torch.no_grad()
def _fold_pair(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    s = bn_scale(bn)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    if isinstance(layer, (QuadraConv2d, QuadraLinear)):
        if layer.bias_a is None or layer.bias_c is None:
            raise ValueError(f"cannot fold into {layer}: it has no biases (build it with bias=True)")
        shape = (-1,) + (1,) * (layer.weight_a.ndim - 1)
        layer.weight_a.mul_(s.view(shape))
        layer.weight_c.mul_(s.view(shape))
        layer.bias_a.mul_(s)
        layer.bias_c.copy_(s * (layer.bias_c - bn.running_mean) + beta)
        return
    shape = (-1,) + (1,) * (layer.weight.ndim - 1)
    layer.weight.mul_(s.view(shape))
    b = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new_b = s * (b - bn.running_mean) + beta
    if layer.bias is None:
        layer.bias = nn.Parameter(new_b.clone())
    else:
        layer.bias.copy_(new_b)


def fold_bn(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a conv/linear in an ``nn.Sequential``; returns ``model``."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev, cur in zip(names, names[1:], strict=False):
            layer, bn = seq._modules[prev], seq._modules[cur]
            if isinstance(layer, FOLDABLE) and isinstance(bn, _BN):
                _fold_pair(layer, bn)
                seq._modules[cur] = nn.Identity()
    return model
