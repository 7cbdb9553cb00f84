"""Channel-level operations shared by the cut (:mod:`~chipfit.compress.prune.structured`) and the allocation
(:mod:`~chipfit.compress.prune.allocate`): the importance of a group's channels, the positions a cut drops in every
layer, removing them, and re-estimating BatchNorm statistics after a cut.

Importance of a channel: the squared L2 norm of its weights in every layer it touches, each layer's norms divided by
their mean so that no layer dominates, averaged over the layers.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn as nn

from chipfit.compress.prune import layers as L
from chipfit.compress.prune.depgraph import ChannelGroup


@torch.no_grad()
def channel_scores(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """Importance of each of ``group``'s channels (see the module's text); the cut removes the lowest first."""
    cache: dict[tuple[str, str], torch.Tensor | None] = {}
    scores = []
    for uses in group.classes:
        vals = []
        for layer, role, pos in uses:
            if (layer, role) not in cache:
                imp = L.importance(model.get_submodule(layer), role)
                cache[layer, role] = None if imp is None else imp / imp.mean().clamp_min(1e-12)
            if cache[layer, role] is not None:
                vals.append(cache[layer, role][pos])
        scores.append(torch.stack(vals).mean() if vals else torch.tensor(0.0))
    return torch.stack(scores)


def dropped_positions(group: ChannelGroup, kept: list[int]) -> dict[tuple[str, str], set[int]]:
    """The channel positions each (layer, role) loses when ``group`` keeps only the classes ``kept``."""
    dropped: dict[tuple[str, str], set[int]] = defaultdict(set)
    kept_set = set(kept)
    for i, uses in enumerate(group.classes):
        if i not in kept_set:
            for layer, role, pos in uses:
                dropped[layer, role].add(pos)
    return dropped


def remove_channels(model: nn.Module, groups: list[ChannelGroup], keep: dict[str, list[int]]) -> None:
    """Cut every layer to the kept classes of every group, in place (``keep``: group name -> kept channels)."""
    dropped: dict[tuple[str, str], set[int]] = defaultdict(set)
    for g in groups:
        for key, pos in dropped_positions(g, keep[g.name]).items():
            dropped[key] |= pos
    for (layer, role), gone in dropped.items():
        module = model.get_submodule(layer)
        idx = torch.tensor([i for i in range(L.width(module, role)) if i not in gone], dtype=torch.long)
        L.shrink(module, role, idx)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: list[torch.Tensor]) -> bool:
    """Re-estimate every BatchNorm's running statistics on ``batches`` (after channel pruning, a BN after a thinned
    layer still holds the statistics of the wide one). Returns whether the network has BatchNorm."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return False
    was = model.training
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    model.train()
    for x in batches:
        model(x)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.train(was)
    return True
