"""How much of each channel group to remove: the same fraction everywhere, or by measured sensitivity.

Sensitivity allocation (in the spirit of NetAdapt, Yang et al. 2018, and the per-layer sensitivity scans of
Han et al. 2015): every group is cut alone at each level of ``LEVELS`` (lowest-importance channels first, the same
ranking as the uniform cut) and the network's outputs on calibration images are compared with the intact network's
(KL divergence of the softmax, no labels needed), after re-estimating BatchNorm statistics on those images as
:func:`chipfit.compress.compress` does after a cut. A greedy search then takes, one step at a time, the group step that
buys the most MACs for the least added distortion, until the network's MACs fall to what the uniform cut of the same
groups would leave. So both allocations reach the same compute; the sensitivity one spends it where the output cares.

MACs of a cut are computed from the widths, not re-profiled: every conv and linear layer's multiply-adds (counted once,
on the intact network, by the cost engine) scale with the kept fraction of its input channels times that of its output
channels (a depthwise conv with the kept fraction of its channels), which is exact for those layers.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

from chipfit.compress.prune import layers as L
from chipfit.compress.prune.channels import channel_scores, dropped_positions, recalibrate_bn, remove_channels
from chipfit.compress.prune.depgraph import ChannelGroup
from chipfit.layers import QuadraConv2d, QuadraLinear

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_WEIGHTED = (nn.Conv2d, nn.Linear, QuadraConv2d, QuadraLinear)


def layer_macs(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Multiply-adds of each conv and linear layer (plain and quadratic) for one input, by module name, as the cost
    engine counts them (unfused: each layer's own MACs)."""
    from chipfit.cost import count

    weighted = {name for name, m in model.named_modules() if isinstance(m, _WEIGHTED)}
    prof = count(model.eval(), (1, *x.shape[1:]))
    costs = prof.by_module(fused=False)
    run_order = dict.fromkeys(layer.module for layer in prof.layers_unfused)
    return {name: int(costs[name].macs) for name in run_order if name in weighted}


class MacModel:
    """MACs of a network after channel cuts, from its intact per-layer MACs and the cut widths."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.base = layer_macs(model, x)
        self.width = {(name, role): L.width(model.get_submodule(name), role) for name in self.base
                      for role in L.slices(model.get_submodule(name)) or {}}

    def __call__(self, dropped: dict[tuple[str, str], int]) -> float:
        total = 0.0
        for name, m in self.base.items():
            f = 1.0
            for role in ("in", "out", "through"):
                if dropped.get((name, role)):
                    f *= 1 - dropped[name, role] / self.width[name, role]
            total += m * f
        return total


def dropped_channels(group: ChannelGroup, kept: list[int]) -> dict[tuple[str, str], int]:
    """How many channels each (layer, role) loses when ``group`` keeps only ``kept``."""
    return {key: len(pos) for key, pos in dropped_positions(group, kept).items()}


def _add(a: dict, b: dict, sign: int = 1) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + sign * v
    return out


def _kept(order: torch.Tensor, level: float) -> list[int]:
    return sorted(order[:max(1, int(round(len(order) * (1 - level))))].tolist())


@torch.no_grad()
def sensitivity_keep(model: nn.Module, found: list[ChannelGroup], cut: list[ChannelGroup], amount: float,
                     x: torch.Tensor, batches: list[torch.Tensor]) -> tuple[dict[str, list[int]], dict[str, float]]:
    """Kept channels of every group, allocated by measured sensitivity (see the module's text).

    Returns the keep lists (every group of ``found``; those not in ``cut`` whole) and the fraction removed per group.
    """
    if not batches:
        raise ValueError("sensitivity allocation measures the network's outputs: it needs calibration images")
    model.eval()
    whole = {g.name: list(range(len(g))) for g in found}
    order = {g.name: channel_scores(model, g).argsort(descending=True) for g in cut}
    intact = copy.deepcopy(model)
    recalibrate_bn(intact, batches)  # the reference gets the same re-estimated statistics as every cut
    ref = [F.log_softmax(intact.eval()(b), dim=1) for b in batches]
    n_images = sum(len(b) for b in batches)

    def distortion(keep: dict[str, list[int]]) -> float:
        m = copy.deepcopy(model)
        remove_channels(m, found, keep)
        recalibrate_bn(m, batches)  # as compress() does after the cut: stale statistics would dominate the measure
        m.eval()
        return float(sum(F.kl_div(F.log_softmax(m(b), dim=1), r, log_target=True, reduction="sum")
                         for b, r in zip(batches, ref, strict=True))) / n_images

    levels = {g.name: [0.0] + [lv for lv in LEVELS if round(len(g) * (1 - lv)) >= 1] for g in cut}
    kept = {g.name: [list(range(len(g)))] + [_kept(order[g.name], lv) for lv in levels[g.name][1:]] for g in cut}
    drops = {g.name: [dropped_channels(g, k) for k in kept[g.name]] for g in cut}
    cost = {g.name: [0.0] + [distortion({**whole, g.name: k}) for k in kept[g.name][1:]] for g in cut}
    macs_of = MacModel(model, x)
    target = macs_of(dict(sum((Counter(dropped_channels(g, _kept(order[g.name], amount))) for g in cut),
                              Counter())))
    at = dict.fromkeys(levels, 0)
    dropped: dict = {}
    macs = macs_of(dropped)
    while macs > target + 1e-6:
        best = None
        for name, i in at.items():
            if i + 1 >= len(levels[name]):
                continue
            trial = _add(_add(dropped, drops[name][i], -1), drops[name][i + 1])
            saved = macs - macs_of(trial)
            if saved > 0:
                ratio = max(cost[name][i + 1] - cost[name][i], 0.0) / saved
                if best is None or ratio < best[0]:
                    best = (ratio, name, trial, macs - saved)
        if best is None:  # every group at its deepest level
            break
        _, name, dropped, macs = best
        at[name] += 1
    keep = {**whole, **{name: kept[name][i] for name, i in at.items()}}
    return keep, {name: levels[name][i] for name, i in at.items()}
