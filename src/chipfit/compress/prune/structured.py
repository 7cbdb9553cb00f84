"""Channel pruning that removes channels physically: smaller layers, fewer MACs on any chip.

What is pruned: the hidden channels inside a block, between the layer that produces them and the layer that consumes
them, with everything in between following (BatchNorm statistics, depthwise convs whose groups shrink with them):
the MLP of every metaformer block (QuadraBlock, HorBlock, SwinBlock, ConvNeXt: pw1 -> GELU -> pw2, pw1 quadratic
or not, all three branches of a quadratic pw1 pruned together) and MobileNetV2's expansion (expand 1x1 -> BN ->
depthwise -> BN -> project). These channels never meet a residual add, so no cross-block dependency group is needed.
Left unpruned: the residual stream of each stage (tied by the adds across all its blocks), the mixers' internals,
ShuffleNetV2 (its channel shuffle and concatenation interleave the two branches).

Importance of a hidden channel: the L2 norm of its producing filter (summed over quadratic branches) times the L2
norm of its consuming column. ``amount`` removes that fraction of each block's hidden channels (at least one kept).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from chipfit.layers import QuadraConv2d
from chipfit.models.blocks import ConvNeXtBlock, InvertedResidual, MetaBlock


def _groups(model: nn.Module) -> list[tuple[str, nn.Module, list[nn.Module], nn.Module]]:
    """(block name, producer, in-between modules, consumer) for every prunable hidden width."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (MetaBlock, ConvNeXtBlock)):
            out.append((name, m.pw1, [], m.pw2))
        elif isinstance(m, InvertedResidual) and len(m.body) == 3:
            (c1, b1, *_), (dw, b2, *_), (c3, *_) = m.body
            out.append((name, c1, [b1, dw, b2], c3))
    return out


def _out_params(layer: nn.Module) -> list[str]:
    return ["weight_a", "weight_b", "weight_c", "bias_a", "bias_b", "bias_c"] if isinstance(layer, QuadraConv2d) \
        else ["weight", "bias"]


@torch.no_grad()
def _importance(producer: nn.Module, consumer: nn.Module) -> torch.Tensor:
    ws = [getattr(producer, n) for n in _out_params(producer) if n.startswith("weight")]
    prod = sum(w.flatten(1).norm(dim=1) for w in ws)
    return prod * consumer.weight.transpose(0, 1).flatten(1).norm(dim=1)


def _take(module: nn.Module, name: str, keep: torch.Tensor, dim: int) -> None:
    t = getattr(module, name, None)
    if t is None:
        return
    new = t.detach().index_select(dim, keep).clone()
    if isinstance(t, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=t.requires_grad))
    else:
        setattr(module, name, new)


def _shrink(producer: nn.Module, middles: list[nn.Module], consumer: nn.Module, keep: torch.Tensor) -> None:
    k = len(keep)
    for n in _out_params(producer):
        _take(producer, n, keep, 0)
    producer.out_channels = k
    for m in middles:
        if isinstance(m, nn.BatchNorm2d):
            for n in ("weight", "bias", "running_mean", "running_var"):
                _take(m, n, keep, 0)
            m.num_features = k
        elif isinstance(m, nn.Conv2d):  # depthwise: one filter per channel
            if m.groups != m.in_channels:
                raise ValueError(f"channel pruning expects a depthwise conv between the 1x1 convs, found {m}")
            _take(m, "weight", keep, 0)
            _take(m, "bias", keep, 0)
            m.in_channels = m.out_channels = m.groups = k
    _take(consumer, "weight", keep, 1)
    consumer.in_channels = k


def prune_channels(model: nn.Module, amount: float, example_input: torch.Tensor | None = None
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """Remove ``amount`` of each block's hidden channels (lowest importance first), in place.

    Returns the model and the plan: block name -> kept channel count, which :func:`apply_plan` applies to a freshly
    built network so that a pruned checkpoint loads. ``example_input`` (optional) is run before and after to check
    the output shape is unchanged.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"prune amount must lie in [0, 1), got {amount}")
    groups = _groups(model)
    if not groups:
        raise ValueError(f"{type(model).__name__}: no prunable hidden channels (channel pruning covers the MLPs of "
                         "metaformer/ConvNeXt blocks and MobileNetV2's expansions); use unstructured pruning")
    shape = None
    if example_input is not None:
        with torch.no_grad():
            shape = model.eval()(example_input).shape
    plan: dict[str, Any] = {}
    for name, prod, mids, cons in groups:
        imp = _importance(prod, cons)
        k = max(1, int(round(len(imp) * (1 - amount))))
        keep = imp.argsort(descending=True)[:k].sort().values
        _shrink(prod, mids, cons, keep)
        plan[name] = k
    if example_input is not None:
        with torch.no_grad():
            after = model(example_input).shape
        if after != shape:
            raise AssertionError(f"channel pruning changed the output shape {tuple(shape)} -> {tuple(after)}")
    return model, plan


def apply_plan(model: nn.Module, plan: dict[str, Any]) -> nn.Module:
    """Shrink a freshly built network to a plan's widths (the weights are then loaded from the checkpoint)."""
    groups = {name: (p, m, c) for name, p, m, c in _groups(model)}
    for name, k in plan.items():
        if name not in groups:
            raise ValueError(f"pruning plan names block {name!r}, which this network does not have")
        _shrink(*groups[name], torch.arange(int(k)))
    return model
