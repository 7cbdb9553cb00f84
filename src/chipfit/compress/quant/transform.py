"""Module transforms: put fake quantization into a network, calibrate it, read back its bit widths."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import torch
import torch.nn as nn

from chipfit.compress.config import QuantConfig
from chipfit.compress.quant.modules import WRAPPERS, ActQuant, Fp16, QuantLayer
from chipfit.layers import is_depthwise


def quantize(model: nn.Module, cfg: QuantConfig) -> nn.Module:
    """Replace every conv/linear/quadratic layer of ``model`` by its fake-quantized wrapper, in place (the network
    keeps its class and ``config``); returns ``model``. Activation quantizers stay transparent until
    :func:`calibrate`."""
    if isinstance(model, tuple(WRAPPERS)):
        raise ValueError("quantize() takes a network holding layers, not a single layer: wrap it in nn.Sequential")
    sites = []
    for parent in list(model.modules()):
        if isinstance(parent, (QuantLayer, Fp16)):
            continue
        for name, child in list(parent.named_children()):
            wrapper = next((w for base, w in WRAPPERS.items() if isinstance(child, base)), None)
            if wrapper is not None and not isinstance(child, (QuantLayer, Fp16)):
                sites.append((parent, name, child, wrapper))
    if not sites:
        raise ValueError("nothing to quantize: the network has no Conv2d, Linear or quadratic layers")
    wide = replace(cfg, weight_bits=8) if cfg.weight_bits < 8 else cfg
    for i, (parent, name, child, wrapper) in enumerate(sites):
        keep = cfg.keep_8bit != "none" and (i in (0, len(sites) - 1) or (
            cfg.keep_8bit == "edges+depthwise" and is_depthwise(child)))
        parent._modules[name] = Fp16(child) if cfg.fp16 else wrapper(child, wide if keep else cfg)
    return model



@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Run ``batches`` (normalised inputs) through ``model`` to set every activation range; returns ``model``."""
    quants = [m for m in model.modules() if isinstance(m, ActQuant)]
    if not quants:
        return model
    was = model.training
    model.eval()
    for q in quants:
        q.observing = True
    n = 0
    for x in batches:
        model(x)
        n += 1
    if n == 0:
        raise ValueError("calibration needs at least one batch of inputs")
    for q in quants:
        q.freeze()
    model.train(was)
    return model


def quant_bits(model: nn.Module) -> dict[str, tuple[int, int | None]]:
    """Module name -> (weight bits, activation bits) of every quantized layer (16, 16 for fp16)."""
    out: dict[str, tuple[int, int | None]] = {}
    for name, m in model.named_modules():
        if isinstance(m, QuantLayer):
            out[name] = m.weight_bits()
        elif isinstance(m, Fp16):
            out[name] = (16, 16)
    return out
