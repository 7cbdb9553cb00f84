"""What to do to a network: one frozen dataclass per method, gathered by :class:`CompressConfig`.

``chipfit.compress(model, CompressConfig(...), data=...)`` applies them in a fixed order: prune (then fine-tune, with
BatchNorm in place), distil during that fine-tuning when a teacher is given, fold BatchNorm, quantize (calibrate, then
optional QAT).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

CALIBRATIONS = ("minmax", "percentile", "mse", "entropy")
QUADRATIC_MODES = ("input", "branches", "product")
KEEP_8BIT = ("none", "edges", "edges+depthwise")
# --quantize names: weight bits, activation bits (None: float activations); fp16 is its own path
PRESETS: dict[str, tuple[int, int | None]] = {"int8": (8, 8), "int4": (4, 8), "binary": (1, 8)}


@dataclass(frozen=True)
class QuantConfig:
    """Fake quantization with a straight-through estimator: symmetric weights by default (zero point 0, the form
    integer kernels want) or asymmetric, asymmetric activations (a zero point, so post-ReLU maps use the whole grid).

    Attributes:
        weight_bits: 1 (binary with a per-tensor or per-channel scale) to 8; 16 with ``fp16`` means half precision.
        act_bits: bits of the activations entering every conv/linear layer (None: weights only).
        per_channel: one weight scale per output channel instead of one per tensor.
        symmetric: symmetric weights (zero point 0); False gives each tensor or channel a zero point so that the
            grid covers [min w, max w] (2 bits or more; binary is always symmetric).
        calibration: how activation ranges are chosen from calibration data: minmax, percentile, mse or entropy.
        percentile: the percentile for ``calibration="percentile"``.
        quadratic: what is quantized in a quadratic layer besides its input and weights: ``input`` (nothing
            more), ``branches`` (f_a(x) and f_b(x) too) or ``product`` (the branches and f_a(x) * f_b(x)).
        keep_8bit: layers whose weights stay at 8 bits when ``weight_bits`` is lower: ``none``, ``edges`` (the first
            conv and the classifier, as binary networks keep them since XNOR-Net) or ``edges+depthwise`` (also
            every depthwise conv, whose k x k filters have too few weights to share a 1- to 4-bit grid).
        fp16: cast weights and activations to float16 instead (no calibration needed).
    """

    weight_bits: int = 8
    act_bits: int | None = 8
    per_channel: bool = False
    symmetric: bool = True
    calibration: str = "minmax"
    percentile: float = 99.99
    quadratic: str = "product"
    keep_8bit: str = "none"
    fp16: bool = False

    def __post_init__(self) -> None:
        if self.fp16:
            return
        if not isinstance(self.weight_bits, int) or not 1 <= self.weight_bits <= 8:
            raise ValueError(f"weight_bits must be an integer from 1 to 8 (or fp16), got {self.weight_bits!r}")
        if not self.symmetric and self.weight_bits == 1:
            raise ValueError("binary weights are symmetric (sign x scale); asymmetric weights need 2 bits or more")
        if self.act_bits is not None and (not isinstance(self.act_bits, int) or not 2 <= self.act_bits <= 16):
            raise ValueError(f"act_bits must be an integer from 2 to 16 or None, got {self.act_bits!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {self.calibration!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must lie in (50, 100], got {self.percentile}")
        if self.keep_8bit not in KEEP_8BIT:
            raise ValueError(f"keep_8bit must be one of {', '.join(KEEP_8BIT)}, got {self.keep_8bit!r}")
        if self.quadratic not in QUADRATIC_MODES:
            raise ValueError(f"quadratic must be one of {', '.join(QUADRATIC_MODES)}, got {self.quadratic!r}")

    @classmethod
    def from_name(cls, name: str, **kw: Any) -> QuantConfig:
        """``int8`` (w8a8), ``int4`` (4-bit weights, 8-bit activations), ``binary`` (1-bit weights) or ``fp16``."""
        if name == "fp16":
            return cls(fp16=True, **kw)
        if name not in PRESETS:
            raise ValueError(f"unknown quantization {name!r}: choose int8, int4, binary or fp16")
        w, a = PRESETS[name]
        return cls(weight_bits=w, act_bits=a, **kw)

    @property
    def name(self) -> str:
        if self.fp16:
            return "fp16"
        return f"w{self.weight_bits}a{self.act_bits}" if self.act_bits else f"w{self.weight_bits}"


@dataclass(frozen=True)
class PruneConfig:
    """Pruning, followed by fine-tuning.

    Attributes:
        amount: fraction of weights (unstructured) or of prunable channels (structured) removed, in [0, 1).
        structured: remove whole channels physically (across residual adds, depthwise groups and quadratic
            branches) instead of zeroing single weights.
        agp_fraction: unstructured only: the sparsity rises along the AGP cubic schedule (Zhu & Gupta 2017) over
            this fraction of the fine-tuning steps, then stays; 0 prunes at once.
        scope: unstructured only: ``global`` (one magnitude threshold for all prunable weights) or ``layer`` (the
            same fraction of every tensor).
        groups: structured only: ``all`` (every channel group, residual streams included) or ``hidden`` (only the
            widths one layer writes: expansions, hidden MLP widths, heads; the residual streams stay whole).
        allocation: structured only: ``uniform`` (``amount`` of every group) or ``sensitivity`` (per-group fractions
            picked from the measured output distortion of cutting each group, for the MACs the uniform cut leaves).
    """

    amount: float = 0.5
    structured: bool = False
    agp_fraction: float = 0.5
    scope: str = "global"
    groups: str = "all"
    allocation: str = "uniform"

    def __post_init__(self) -> None:
        if not 0.0 <= self.amount < 1.0:
            raise ValueError(f"prune amount must lie in [0, 1), got {self.amount}")
        if not 0.0 <= self.agp_fraction <= 1.0:
            raise ValueError(f"agp_fraction must lie in [0, 1], got {self.agp_fraction}")
        if self.scope not in ("global", "layer"):
            raise ValueError(f"pruning scope must be global or layer, got {self.scope!r}")
        if self.groups not in ("all", "hidden"):
            raise ValueError(f"channel groups to prune must be all or hidden, got {self.groups!r}")
        if self.groups != "all" and not self.structured:
            raise ValueError("groups='hidden' applies to channel (structured) pruning only")
        if self.allocation not in ("uniform", "sensitivity"):
            raise ValueError(f"channel allocation must be uniform or sensitivity, got {self.allocation!r}")
        if self.allocation != "uniform" and not self.structured:
            raise ValueError("allocation='sensitivity' applies to channel (structured) pruning only")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from a teacher during fine-tuning (or training).

    Attributes:
        teacher: a checkpoint or run directory (as ``chipfit eval`` takes) holding the teacher; recorded in the
            report, while the caller loads the network and passes it to ``compress(..., teacher=...)``.
        temperature: softening of both logit distributions (Hinton et al. 2015); the KL term is scaled by T^2.
        alpha: weight of the KL term; the label loss keeps weight 1.
        feature_weight: weight of the feature term (0 disables it): each stage's output of the student, mapped by a
            1x1 conv adapter to the teacher's width (and resized to its map), against the teacher's (MSE).
    """

    teacher: str = ""
    temperature: float = 4.0
    alpha: float = 1.0
    feature_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"distillation temperature must be > 0, got {self.temperature}")
        if self.alpha < 0 or self.feature_weight < 0:
            raise ValueError("distillation weights must be >= 0")


@dataclass(frozen=True)
class CompressConfig:
    """Everything ``chipfit compress`` does, in its order: prune (+ fine-tune, + distil), fold, quantize (+ QAT).

    Attributes:
        fold: fold BatchNorm into the preceding conv/linear (exact) after pruning and fine-tuning, before
            quantization.
        quant, prune, distill: the methods; None skips one.
        finetune_epochs: epochs of fine-tuning after pruning (or of distillation when only ``distill`` is set).
        qat_epochs: quantization-aware training epochs after calibration (0: post-training quantization).
        calib_images: training images used to calibrate activation ranges.
        lr: learning rate of fine-tuning and QAT (cosine, short warm-up).
        batch_size: batch size of fine-tuning, QAT, calibration.
        arch: the accelerator the report's latency and energy are simulated on (``chipfit simulate --arch``).
        seed: seeds calibration sampling and fine-tuning.
        max_steps_per_epoch: cap on optimiser steps per fine-tuning/QAT epoch (None: whole epochs).
    """

    fold: bool = True
    quant: QuantConfig | None = None
    prune: PruneConfig | None = None
    distill: DistillConfig | None = None
    finetune_epochs: int = 2
    qat_epochs: int = 0
    calib_images: int = 512
    lr: float = 5e-4
    batch_size: int = 128
    arch: str = "edge-npu"
    seed: int = 0
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        for k in ("finetune_epochs", "qat_epochs"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.calib_images < 1 or self.batch_size < 1:
            raise ValueError("calib_images and batch_size must be >= 1")
        if self.qat_epochs and self.quant is None:
            raise ValueError("qat_epochs needs a quantization (--quantize)")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompressConfig:
        d = dict(d)
        for key, sub in (("quant", QuantConfig), ("prune", PruneConfig), ("distill", DistillConfig)):
            if d.get(key) is not None:
                d[key] = sub(**d[key])
        return cls(**d)

    def replace(self, **kw: Any) -> CompressConfig:
        return replace(self, **kw)
