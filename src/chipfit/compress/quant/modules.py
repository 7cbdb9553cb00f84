"""Fake-quantized layers: each wraps the float layer it replaces (weights stay in the wrapped module, so a
checkpoint holds the float weights plus the activation ranges as buffers).

What is quantized: the input of every conv/linear (asymmetric, calibrated) and its weights (symmetric, recomputed
from the current weights at every call, so QAT keeps them consistent); biases stay float (int32 on a chip, at the
product of the input and weight scales). Quadratic layers add, by ``QuantConfig.quadratic``: ``input`` nothing more;
``branches`` f_a(x) and f_b(x) before their product; ``product`` also f_a(x) * f_b(x), whose range is about the
square of a branch's, before f_c(x) is added.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.compress.config import QuantConfig
from chipfit.compress.quant import fake
from chipfit.layers import QuadraConv2d, QuadraLinear


class ActQuant(nn.Module):
    """Observe (calibration), then fake-quantize with a fixed range. Identity until calibrated.

    States: ``observe`` records min/max and a subsample of values; :meth:`freeze` turns them into a scale and zero
    point by the configured method; from then on forward fake-quantizes (straight-through gradient).
    """

    def __init__(self, bits: int, method: str, percentile: float):
        super().__init__()
        self.bits, self.method, self.percentile = bits, method, percentile
        self.register_buffer("lo", torch.tensor(float("inf")))
        self.register_buffer("hi", torch.tensor(float("-inf")))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))
        self.register_buffer("ready", torch.tensor(False))
        self.observing = False
        self._samples: list[torch.Tensor] = []
        self._gen = torch.Generator().manual_seed(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            self.lo.fill_(min(float(self.lo), float(x.min())))
            self.hi.fill_(max(float(self.hi), float(x.max())))
            if self.method != "minmax":
                self._samples.append(fake.subsample(x, fake.SAMPLES // 8, self._gen))
            return x
        if not bool(self.ready):
            return x
        if torch.onnx.is_in_onnx_export():  # written as QuantizeLinear/DequantizeLinear
            return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 2**self.bits - 1)
        return fake.fake_quant(x, self.scale, self.zero_point, 0, 2**self.bits - 1)

    def freeze(self) -> None:
        if not torch.isfinite(self.lo):
            raise ValueError("an activation quantizer saw no data during calibration: is it on the forward path?")
        samples = torch.cat(self._samples) if self._samples else torch.empty(0)
        if samples.numel() > fake.SAMPLES:
            samples = samples[torch.randperm(samples.numel(), generator=self._gen)[:fake.SAMPLES]]
        lo, hi = fake.choose_range(samples, float(self.lo), float(self.hi), self.method, self.bits, self.percentile)
        s, z = fake.act_qparams(lo, hi, self.bits)
        self.scale.fill_(s)
        self.zero_point.fill_(z)
        self.ready.fill_(True)
        self._samples = []
        self.observing = False

    def extra_repr(self) -> str:
        return f"bits={self.bits}, method={self.method}, scale={float(self.scale):.4g}, zp={int(self.zero_point)}"


class QuantLayer(nn.Module):
    """Base of the fake-quantized conv/linear/quadratic wrappers: the float ``layer``, its config, the input's
    quantizer ``act``, and ``qw`` (the weights as the layer computes with them)."""

    def __init__(self, layer: nn.Module, cfg: QuantConfig):
        super().__init__()
        self.layer, self.cfg = layer, cfg
        self.act = ActQuant(cfg.act_bits, cfg.calibration, cfg.percentile) if cfg.act_bits else nn.Identity()

    def qw(self, w: torch.Tensor) -> torch.Tensor:
        return fake.quantize_weight(w, self.cfg.weight_bits, self.cfg.per_channel, self.cfg.symmetric)[0]

    def weight_bits(self) -> tuple[int, int | None]:
        return self.cfg.weight_bits, self.cfg.act_bits


class QConv2d(QuantLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.layer
        return c._conv_forward(self.act(x), self.qw(c.weight), c.bias)


class QLinear(QuantLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.act(x), self.qw(self.layer.weight), self.layer.bias)


class QQuadratic(QuantLayer):
    """A quantized QuadraConv2d or QuadraLinear: three quantized branches, optionally quantized branch outputs and
    product (see the module docstring)."""

    def __init__(self, layer: nn.Module, cfg: QuantConfig):
        super().__init__(layer, cfg)
        mk = (lambda: ActQuant(cfg.act_bits, cfg.calibration, cfg.percentile)) if cfg.act_bits else nn.Identity
        on_branches = cfg.quadratic in ("branches", "product")
        self.qa, self.qb = (mk(), mk()) if on_branches else (nn.Identity(), nn.Identity())
        self.qp = mk() if cfg.quadratic == "product" else nn.Identity()

    def _branch(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        q = self.layer
        if isinstance(q, QuadraLinear):
            return F.linear(x, w, b)
        pad = q.padding
        return F.conv2d(x, w, b, q.stride, pad, q.dilation, q.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, x = self.layer, self.act(x)
        a = self.qa(self._branch(x, self.qw(q.weight_a), q.bias_a))
        b = self.qb(self._branch(x, self.qw(q.weight_b), q.bias_b))
        return self.qp(a * b) + self._branch(x, self.qw(q.weight_c), q.bias_c)


class Fp16(nn.Module):
    """Half precision, emulated: weights and the layer's input rounded to float16 and computed in float32 (CPU
    kernels for half convolutions are missing or slow; the rounding is what changes accuracy)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(p.half().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.half().float())


# subclasses count (QuadraMixer is a QuadraConv2d, DWConvMixer a Conv2d): quadratic layers are matched first
WRAPPERS: dict[type, type] = {QuadraConv2d: QQuadratic, QuadraLinear: QQuadratic, nn.Conv2d: QConv2d,
                              nn.Linear: QLinear}
