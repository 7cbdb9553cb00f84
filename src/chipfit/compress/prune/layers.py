"""The per-layer table of channel pruning: how each layer's tensors are sliced when channels go.

A layer touches a channel in one of three roles:
    in       it reads the channel (a conv's or linear's input column)
    out      it produces the channel (a conv's filter, a linear's row, with its bias)
    through  the channel passes it one to one (depthwise conv, BatchNorm, LayerNorm, layer scale)
Each entry names, per role, the parameters and buffers (and the dimension) that shrink and the attributes that hold
the new width. Spatial mixers with an inner width of their own (Swin's window attention, HorNet's gnConv) read the
stream with one layer and write it with another; their inner widths are left as they are.

Layers not in the table are traced through (their own ops are followed) or, where tracing stops, freeze the
channels they touch (never pruned).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from chipfit.layers import (
    DropPath,
    GnConv,
    LayerNorm2d,
    LayerScale,
    QuadraConv2d,
    QuadraLinear,
    WindowAttention,
    is_depthwise,
)


@dataclass(frozen=True)
class Slice:
    """Tensors (``path`` inside the layer, dimension) cut in one role, and attributes set to the new width."""

    tensors: tuple[tuple[str, int], ...]
    attrs: tuple[str, ...] = ()


_CONV_W = (("weight", 0), ("bias", 0))
_QUAD_W = tuple((f"{p}_{b}", 0) for p in ("weight", "bias") for b in "abc")
_QUAD_IN = tuple((f"weight_{b}", 1) for b in "abc")
_NORM = (("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0))


def slices(layer: nn.Module) -> dict[str, Slice] | None:
    """The layer's roles (``in``/``out``/``through``), or None when the table does not know the layer."""
    if isinstance(layer, QuadraConv2d):
        if is_depthwise(layer):
            return {"through": Slice(_QUAD_W, ("in_channels", "out_channels", "groups"))}
        return {"in": Slice(_QUAD_IN, ("in_channels",)), "out": Slice(_QUAD_W, ("out_channels",))}
    if isinstance(layer, QuadraLinear):
        return {"in": Slice(_QUAD_IN, ("in_features",)), "out": Slice(_QUAD_W, ("out_features",))}
    if isinstance(layer, nn.Conv2d):
        if is_depthwise(layer):
            return {"through": Slice(_CONV_W, ("in_channels", "out_channels", "groups"))}
        return {"in": Slice((("weight", 1),), ("in_channels",)), "out": Slice(_CONV_W, ("out_channels",))}
    if isinstance(layer, nn.Linear):
        return {"in": Slice((("weight", 1),), ("in_features",)), "out": Slice(_CONV_W, ("out_features",))}
    if isinstance(layer, nn.BatchNorm2d):
        return {"through": Slice(_NORM, ("num_features",))}
    if isinstance(layer, nn.LayerNorm) and len(layer.normalized_shape) == 1:
        return {"through": Slice((("weight", 0), ("bias", 0)), ("normalized_shape",))}
    if isinstance(layer, LayerScale):
        return {"through": Slice((("gamma", 0),))}
    if isinstance(layer, WindowAttention):
        return {"in": Slice((("qkv.weight", 1),), ("dim", "qkv.in_features")),
                "out": Slice((("proj.weight", 0), ("proj.bias", 0)), ("proj.out_features",))}
    if isinstance(layer, GnConv):
        return {"in": Slice((("proj_in.weight", 1),), ("proj_in.in_channels",)),
                "out": Slice((("proj_out.weight", 0), ("proj_out.bias", 0)), ("proj_out.out_channels",))}
    if isinstance(layer, PASS_THROUGH):
        return {}
    return None


# layers without parameters that keep every channel where it is
PASS_THROUGH = (nn.Identity, DropPath, nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid, nn.Dropout,
                nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)

# the table's layers are traced as one call each
LEAVES = (QuadraConv2d, QuadraLinear, nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm, LayerNorm2d, LayerScale,
          WindowAttention, GnConv, *PASS_THROUGH)


def _owner(layer: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, name = path.split(".")
    for p in parents:
        layer = getattr(layer, p)
    return layer, name


def width(layer: nn.Module, role: str) -> int:
    """The layer's current number of channels in this role."""
    path, dim = slices(layer)[role].tensors[0]
    owner, name = _owner(layer, path)
    return getattr(owner, name).shape[dim]


@torch.no_grad()
def importance(layer: nn.Module, role: str) -> torch.Tensor:
    """Squared L2 norm of each channel's weights in this role (all of a quadratic layer's filters together)."""
    total = None
    for path, dim in slices(layer)[role].tensors:
        owner, name = _owner(layer, path)
        t = getattr(owner, name, None)
        if t is None or not name.startswith(("weight", "gamma")):
            continue
        sq = t.detach().float().transpose(0, dim).reshape(t.shape[dim], -1).pow(2).sum(1)
        total = sq if total is None else total + sq
    return total


@torch.no_grad()
def shrink(layer: nn.Module, role: str, keep: torch.Tensor) -> None:
    """Keep only the channels ``keep`` (sorted indices) of this role's tensors and set the widths."""
    spec = slices(layer)[role]
    for path, dim in spec.tensors:
        owner, name = _owner(layer, path)
        t = getattr(owner, name, None)
        if t is None:
            continue
        new = t.detach().index_select(dim, keep.to(t.device)).clone()
        if isinstance(t, nn.Parameter):
            setattr(owner, name, nn.Parameter(new, requires_grad=t.requires_grad))
        else:
            setattr(owner, name, new)
    k = len(keep)
    for path in spec.attrs:
        owner, name = _owner(layer, path)
        setattr(owner, name, (k,) if name == "normalized_shape" else k)
