"""What :func:`chipfit.compress.compress` reports of a network before (``baseline``) and after (``compressed``).

    accuracy      top-1 on the data set's test split (a fraction), None without data
    size_bytes    storage of the parameters: quantized weights at their bit width, biases as int32 (4 B), everything
                  else at 4 B (2 B for fp16); a tensor that pruning left sparse is stored as its non-zero values plus a
                  4-bit relative index each (Deep Compression's format, Han et al. 2016) when that is smaller
    macs          multiply-adds executed on ``arch``: the physical network's, less the zero weights when the
                  architecture skips them (``dense_macs``: all of them)
    latency_s, energy_j
                  ``chipfit simulate`` of the physical network on ``arch`` (default ``edge-npu``) at the network's bit
                  widths; float runs as 32-bit data on the array (several passes on an 8-bit array); every layer
                  by itself, each map written to and read back from DRAM
    latency_fused_s, energy_fused_j
                  the same with each conv/linear and its BatchNorm, activation and element-wise followers run as one
                  layer (``simulate(fused=True)``), as a deployment compiler runs them: what a chip would see

Counts come from the cost stage (:func:`chipfit.cost.count`), times and energies from the simulator. The measured
ONNX Runtime latency (``ort_latency_s``) is added by :func:`chipfit.deploy.export_compressed`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from chipfit.compress.config import CompressConfig, QuantConfig
from chipfit.train.engine import evaluate

INDEX_BITS = 4


def accuracy(model: nn.Module, data: Any, task: Any = None) -> float | None:
    """Top-1 on ``data``'s test split, in eval mode (the module's mode is restored); None without data. With a
    ``task`` (segmentation, detection: :mod:`chipfit.train.dense`) its score instead: mIoU, mAP@0.5."""
    if data is None:
        return None
    was = model.training
    model.eval()
    try:
        if task is not None:
            return float(task.evaluate(model, data, "test")[task.score])
        return float(evaluate(model, data, "test")["accuracy"])
    finally:
        model.train(was)


def measure(model: nn.Module, config: CompressConfig, data: Any, input_shape, quant: QuantConfig | None = None,
            float_model: nn.Module | None = None, task: Any = None) -> dict[str, Any]:
    """Accuracy (or ``task``'s score), storage, MACs and simulated latency/energy (see the module docstring).

    Args:
        model: the network whose accuracy is measured (fake-quantized, if ``quant``).
        config: gives the simulated architecture (``config.arch``).
        data: a :class:`~chipfit.data.DataBundle`, or None (no accuracy).
        input_shape: one input, e.g. (1, 1, 28, 28).
        quant: the quantization ``model`` carries; None for a float network.
        float_model: the physical network (``model`` before fake quantization), costed in its place.
    """
    from chipfit.cost import count
    from chipfit.hw.sim import load_arch, precision_from_bits, simulate

    phys = float_model if float_model is not None else model
    prof = count(phys, tuple(input_shape))
    zeros, weights = weight_sparsity(phys)
    density = 1 - zeros / weights if weights else 1.0
    bits, wbits = 32, 32
    layer_bits: dict[str, int] = {}
    if quant is not None:
        bits, wbits = (16, 16) if quant.fp16 else (quant.act_bits or 32, quant.weight_bits)
        from chipfit.compress.quant import quant_bits

        # mixed precision (keep_8bit): the layers that differ from the network's weight width
        layer_bits = {n: w for n, (w, _) in quant_bits(model).items() if w != wbits}
    arch = load_arch(config.arch)
    sparsity = None
    note = ""
    if density < 0.99:
        if "unstructured" in arch.sparsity:
            sparsity = round(1 - density, 4)
        else:
            note = f"{arch.name} does not skip unstructured zeros: simulated dense"
    sim_bits = bits if bits in (4, 8, 16, 32) else 8
    kw = {"precision": precision_from_bits(sim_bits, wbits, layer_bits), "sparsity": sparsity}
    tot = simulate(prof, arch, **kw, fused=False).total  # said outright: each layer by itself
    fused = simulate(prof, arch, **kw, fused=True).total
    res = {"accuracy": accuracy(model, data, task), "size_bytes": size_bytes(phys, quant, layer_bits),
           "params": prof.total.params,
           "dense_macs": prof.total.macs, "macs": tot["macs"] if sparsity else prof.total.macs,
           "weight_sparsity": 1 - density, "latency_s": tot["time_s"], "energy_j": tot["energy_j"],
           "latency_fused_s": fused["time_s"], "energy_fused_j": fused["energy_j"],
           "arch": arch.name, "bits": bits, "weight_bits": wbits}
    if note:
        res["note"] = note
    return res


def weighted(model: nn.Module) -> list[tuple[str, nn.Module, str, torch.Tensor]]:
    """(module name, module, parameter name, tensor) of every conv/linear-like weight (2+ dimensions)."""
    out = []
    for mn, m in model.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            if p.ndim >= 2:
                out.append((mn, m, pn, p))
    return out


def weight_sparsity(model: nn.Module) -> tuple[int, int]:
    """(zero values, all values) over the weights of :func:`weighted`."""
    zeros = total = 0
    for _, _, _, p in weighted(model):
        zeros += int((p == 0).sum())
        total += p.numel()
    return zeros, total


def size_bytes(model: nn.Module, quant: QuantConfig | None = None, layer_bits: dict[str, int] | None = None) -> int:
    """Parameter storage in bytes (the convention in the module docstring); ``layer_bits`` gives single layers (by
    module name) another weight width."""
    wbits = 32 if quant is None else (16 if quant.fp16 else quant.weight_bits)
    other = 2 if quant is not None and quant.fp16 else 4
    weights = {id(p): (layer_bits or {}).get(mn, wbits) for mn, _, _, p in weighted(model)}
    total = 0.0
    for p in model.parameters():
        if id(p) in weights:
            wbits = weights[id(p)]
            dense = p.numel() * wbits / 8
            nnz = int((p != 0).sum())
            total += min(dense, nnz * (wbits + INDEX_BITS) / 8)
        else:
            total += p.numel() * other
    return int(math.ceil(total))
