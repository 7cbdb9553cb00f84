"""What the dense heads share: input sizes, the backbone a dense config carries, small conv blocks, upsampling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.models.blocks import conv_bn_act
from chipfit.models.config import ModelConfig, _check_keys


def as_hw(size: int | Sequence[int], what: str = "input_size") -> tuple[int, int]:
    """``96`` or ``(384, 1280)`` -> (H, W), checked."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in hw):
        raise ValueError(f"{what} must be a positive int or (height, width), got {size!r}")
    return hw  # type: ignore[return-value]


def fit_backbone(backbone: ModelConfig, in_chans: int, input_hw: tuple[int, int]) -> ModelConfig:
    """The backbone config with this dense network's input channels and size (its classifier is never built, so its
    ``num_classes`` is set to 1): one place holds each fact, and the backbone's own checks see the real input."""
    if not isinstance(backbone, ModelConfig):
        raise TypeError(f"backbone must be a ModelConfig (e.g. chipfit.models.dense.dense_backbone('quadranet_s')), "
                        f"got {type(backbone).__name__}")
    return backbone.replace(in_chans=in_chans, input_size=min(input_hw), num_classes=1)


def check_common(cfg: Any) -> None:
    """Checks every dense config shares: classes, input channels, input size (normalised to a tuple)."""
    if cfg.num_classes < 1 or cfg.in_chans < 1:
        raise ValueError(f"num_classes and in_chans must be >= 1, got {cfg.num_classes} and {cfg.in_chans}")
    object.__setattr__(cfg, "input_hw", as_hw(cfg.input_hw, "input_hw"))


def tuples(cfg: Any, *names: str) -> None:
    """Store sequence fields as tuples (JSON gives lists), so a round trip compares equal."""
    for n in names:
        object.__setattr__(cfg, n, tuple(getattr(cfg, n)))


def config_from_dict(cls: type, arch: str, d: dict[str, Any]) -> Any:
    """Inverse of a dense config's ``to_dict``: the ``arch`` key must name ``cls``'s architecture."""
    d = dict(d)
    got = d.pop("arch", arch)
    if got != arch:
        raise ValueError(f"{cls.__name__}.from_dict: the dict describes a {got!r} network, not {arch!r}")
    _check_keys(cls, d, f"{arch} config")
    if "backbone" in d:
        d["backbone"] = ModelConfig.from_dict(d["backbone"])
    return cls(**d)


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """k x k conv (no bias), BatchNorm, ReLU."""
    return conv_bn_act(cin, cout, k, stride, groups, act=nn.ReLU)


class SeparableConv(nn.Sequential):
    """Depthwise k x k (BatchNorm, ReLU), then pointwise 1x1 (BatchNorm, ReLU): Fast-SCNN's DSConv."""

    def __init__(self, cin: int, cout: int, stride: int = 1, k: int = 3):
        super().__init__(conv_bn_relu(cin, cin, k, stride, groups=cin), conv_bn_relu(cin, cout, 1))


def resize(x: torch.Tensor, like: torch.Tensor | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """``x`` resized to the spatial size of ``like`` (a tensor or (H, W)); sizes known when traced, so it exports."""
    size = tuple(like.shape[-2:]) if isinstance(like, torch.Tensor) else tuple(like)
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def init_convs(module: nn.Module) -> None:
    """Kaiming-normal (fan out) convs, zero biases, unit BatchNorm/GroupNorm: the heads' initialisation (the
    backbone keeps its own family's)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
