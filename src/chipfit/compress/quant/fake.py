"""Tensor-level quantization: scales and zero points, fake quantization with a straight-through estimator, and the
choice of an activation range from calibration samples.

Conventions (stated once): a b-bit symmetric weight grid is k * scale for integers |k| <= 2^(b-1) - 1 (zero point 0,
the "narrow range" ONNX Runtime and TFLite use for weights); an asymmetric weight grid is (k - z) * scale for signed
integers -2^(b-1) <= k <= 2^(b-1) - 1 with a zero point z, covering [min(w, 0), max(w, 0)] (all 2^b levels; the
integers fit the same int8 storage); binary weights are sign(w) * mean|w| (XNOR-Net, Rastegari
et al. 2016), per tensor or per output channel; activations are asymmetric b-bit, k in [0, 2^b - 1] with a zero
point, so a ReLU output uses the whole grid. Rounding is half-to-even (as ONNX QuantizeLinear). Gradients pass
straight through inside the clamp range and are zero outside (Bengio et al. 2013; Jacob et al. 2018).
"""

from __future__ import annotations

import math

import torch

SAMPLES = 1 << 20  # calibration keeps at most this many activation values per quantizer (a random subsample)


def weight_scale(w: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """Symmetric min-max scale: one per output channel (dim 0) or one for the tensor (shape (1,))."""
    a = w.detach().abs().flatten(1).amax(1) if per_channel else w.detach().abs().amax().reshape(1)
    if bits == 1:
        a = w.detach().abs().flatten(1).mean(1) if per_channel else w.detach().abs().mean().reshape(1)
        return a.clamp_min(1e-12)
    return (a / (2 ** (bits - 1) - 1)).clamp_min(1e-12)


def weight_qparams(w: torch.Tensor, bits: int, per_channel: bool, symmetric: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(scale, zero point (int32), qmin, qmax) of a weight grid (2 <= bits <= 8), per channel or per tensor."""
    if symmetric:
        scale = weight_scale(w, bits, per_channel)
        q = 2 ** (bits - 1) - 1
        return scale, torch.zeros(scale.numel(), dtype=torch.int32), -q, q
    d = w.detach()
    lo = d.flatten(1).amin(1) if per_channel else d.amin().reshape(1)
    hi = d.flatten(1).amax(1) if per_channel else d.amax().reshape(1)
    lo, hi = lo.clamp_max(0), hi.clamp_min(0)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scale = ((hi - lo) / (qmax - qmin)).clamp_min(1e-12)
    zp = (qmin - torch.round(lo / scale)).clamp(qmin, qmax).to(torch.int32)
    return scale, zp, qmin, qmax


def quantize_weight(w: torch.Tensor, bits: int, per_channel: bool, symmetric: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(fake-quantized weight, its scale); the gradient reaches ``w`` straight through."""
    if bits == 1:
        if not symmetric:
            raise ValueError("binary weights are symmetric (sign x scale); asymmetric weights need 2 bits or more")
        scale = weight_scale(w, bits, per_channel)
        shape = (-1,) + (1,) * (w.ndim - 1) if per_channel else (1,) * w.ndim
        wb = torch.where(w >= 0, 1.0, -1.0) * scale.view(shape)
        return w + (wb - w).detach(), scale
    scale, zp, qmin, qmax = weight_qparams(w, bits, per_channel, symmetric)
    if per_channel:
        return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, qmin, qmax), scale
    return torch.fake_quantize_per_tensor_affine(w, scale, zp[0], qmin, qmax), scale


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """(clamp(round(x / scale) + z) - z) * scale, with ONNX QuantizeLinear's arithmetic (a division; torch's own
    fake-quant multiplies by 1 / scale, which can round a value on a half step the other way) and a straight-through
    gradient inside the clamp range."""
    k = torch.round(x / scale) + zero_point
    y = (k.clamp(qmin, qmax) - zero_point) * scale
    inside = (k >= qmin) & (k <= qmax)
    return torch.where(inside, x + (y - x).detach(), y.detach())


def act_qparams(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """Asymmetric scale and zero point covering [lo, hi] (widened to include 0, so zero is exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmax = 2**bits - 1
    scale = max((hi - lo) / qmax, 1e-8)
    zp = int(min(max(round(-lo / scale), 0), qmax))
    return scale, zp


def mse_range(x: torch.Tensor, lo: float, hi: float, bits: int, steps: int = 60) -> tuple[float, float]:
    """Shrink [lo, hi] by a common factor to the one with the least squared quantization error on ``x``."""
    best, best_err = (lo, hi), math.inf
    for t in torch.linspace(0.2, 1.0, steps).tolist():
        s, z = act_qparams(lo * t, hi * t, bits)
        err = float((torch.fake_quantize_per_tensor_affine(x, s, z, 0, 2**bits - 1) - x).pow(2).mean())
        if err < best_err:
            best, best_err = (lo * t, hi * t), err
    return best


def entropy_range(x: torch.Tensor, bits: int, bins: int = 2048) -> tuple[float, float]:
    """The clipping threshold that minimises KL(P || Q) between the histogram of |x| and its quantized version
    (the method TensorRT's int8 calibration describes, Migacz 2017), applied to both signs."""
    a = x.abs()
    amax = float(a.max())
    if amax == 0:
        return 0.0, 0.0
    hist = torch.histc(a, bins, 0, amax).double()
    levels = 2 ** (bits - 1) if float(x.min()) < 0 else 2**bits
    best_i, best_kl = bins, math.inf
    for i in range(levels, bins + 1, 16):
        p = hist[:i].clone()
        p[-1] += hist[i:].sum()
        chunks = torch.tensor_split(hist[:i], levels)
        q = torch.cat([torch.where(c > 0, c.sum() / (c > 0).sum().clamp_min(1), 0.0) for c in chunks])
        pn, qn = p / p.sum(), q / q.sum().clamp_min(1e-12)
        mask = pn > 0
        kl = float((pn[mask] * torch.log(pn[mask] / qn[mask].clamp_min(1e-12))).sum())
        if kl < best_kl:
            best_i, best_kl = i, kl
    thr = amax * best_i / bins
    return (-thr if float(x.min()) < 0 else 0.0), thr


def choose_range(samples: torch.Tensor, lo: float, hi: float, method: str, bits: int,
                 percentile: float = 99.99) -> tuple[float, float]:
    """The activation range from calibration: ``minmax`` keeps [lo, hi] (every value seen); the others clip."""
    if method == "minmax" or samples.numel() == 0:
        return lo, hi
    if method == "percentile":
        q = torch.quantile(samples.float(), torch.tensor([1 - percentile / 100, percentile / 100]))
        return min(float(q[0]), 0.0), max(float(q[1]), 0.0)
    if method == "mse":
        return mse_range(samples, lo, hi, bits)
    if method == "entropy":
        return entropy_range(samples, bits)
    raise ValueError(f"unknown calibration method {method!r}")


def subsample(x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    flat = x.detach().flatten()
    if flat.numel() <= n:
        return flat.clone()
    return flat[torch.randint(0, flat.numel(), (n,), generator=generator)]
