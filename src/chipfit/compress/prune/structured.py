"""Channel pruning that removes channels physically: smaller layers, fewer MACs on any chip.

Which channels go together comes from :mod:`chipfit.compress.prune.depgraph`: every prunable group of the traced
network, i.e. each stage's residual stream (across all its adds, norms, layer scales, the mixers' in/out layers and
the layers that open and close the stage), each block's hidden MLP width (a quadratic pw1's three filters together),
MobileNetV2's expansions with their depthwise convs, ShuffleNetV2's branch widths, head widths. How each layer is cut
comes from the per-layer table in :mod:`chipfit.compress.prune.layers`.

Importance of a channel: :func:`~chipfit.compress.prune.channels.channel_scores` (the normalised squared L2 norms
of its weights in every layer it touches). ``amount`` removes that fraction of every group's channels (lowest
importance first, at least one kept); with ``groups="hidden"`` only of the groups that one layer writes (hidden
widths, expansions, heads), leaving the residual streams, which every block of a stage reads and adds into, at full
width.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from chipfit.compress.prune.channels import channel_scores, remove_channels
from chipfit.compress.prune.depgraph import channel_groups

PLAN_VERSION = 2


def _example(model: nn.Module, example_input: torch.Tensor | None) -> torch.Tensor:
    if example_input is not None:
        return example_input[:1]
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "input_size"):
        raise ValueError(f"{type(model).__name__}: channel pruning traces the network on an input; pass "
                         "example_input (a tensor of the input's shape)")
    return torch.zeros(1, cfg.in_chans, cfg.input_size, cfg.input_size)


GROUPS = ("all", "hidden")
ALLOCATIONS = ("uniform", "sensitivity")


def prune_channels(model: nn.Module, amount: float, example_input: torch.Tensor | None = None,
                   groups: str = "all", allocation: str = "uniform", batches: list[torch.Tensor] | None = None
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """Remove ``amount`` of every channel group's channels (lowest importance first), in place.

    Args:
        model: the network (float; fold BatchNorm first if it is to be folded).
        amount: fraction of each group's channels removed, in [0, 1).
        example_input: an input (its first sample is used to trace the network); networks of the zoo know their
            input size and may omit it.
        groups: ``all`` (every prunable group) or ``hidden`` (not the residual streams, see the module's text).
        allocation: ``uniform`` (``amount`` of every group) or ``sensitivity`` (per-group fractions chosen on the
            outputs' distortion for the same MACs, see :mod:`chipfit.compress.prune.allocate`; needs ``batches``).
        batches: calibration images, for ``sensitivity``.

    Returns:
        The model and the plan (the kept channels of each group), which :func:`apply_plan` applies to a freshly built
        network so that a pruned checkpoint loads.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"prune amount must lie in [0, 1), got {amount}")
    if groups not in GROUPS:
        raise ValueError(f"channel groups to prune must be one of {', '.join(GROUPS)}, got {groups!r}")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"channel allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    x = _example(model, example_input)
    found = channel_groups(model, x)
    cut = [g for g in found if groups == "all" or not g.is_stream]
    if not cut:
        raise ValueError(f"{type(model).__name__}: no channel can be removed (every channel is tied to the input, the "
                         "output or an op channel pruning does not follow"
                         + (", or lies on a residual stream; try groups 'all'" if found else "")
                         + "); use unstructured pruning")
    was = model.training
    with torch.no_grad():
        before = model.eval()(x).shape
    fractions = {g.name: amount for g in cut}
    if allocation == "sensitivity":
        from chipfit.compress.prune.allocate import sensitivity_keep

        keep, fractions = sensitivity_keep(model, found, cut, amount, x, batches or [])
    else:
        keep = {g.name: list(range(len(g))) for g in found}
        for g in cut:
            k = max(1, int(round(len(g) * (1 - amount))))
            keep[g.name] = sorted(channel_scores(model, g).argsort(descending=True)[:k].tolist())
    remove_channels(model, found, keep)
    with torch.no_grad():
        after = model(x).shape
    model.train(was)
    if after != before:
        raise AssertionError(f"channel pruning changed the output shape {tuple(before)} -> {tuple(after)}")
    return model, {"version": PLAN_VERSION, "input_shape": list(x.shape), "keep": keep, "fractions": fractions}


def apply_plan(model: nn.Module, plan: dict[str, Any]) -> nn.Module:
    """Cut a freshly built network to a plan's channels (the weights are then loaded from the checkpoint)."""
    if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION:
        raise ValueError("this pruning plan comes from an older chipfit (per-block widths); prune the network again "
                         "with `chipfit compress --prune F --structured`")
    groups = channel_groups(model, torch.zeros(plan["input_shape"]))
    names = {g.name for g in groups}
    missing = sorted(set(plan["keep"]) - names)
    if missing or names - set(plan["keep"]):
        raise ValueError(f"pruning plan does not fit this network (groups {', '.join(missing) or 'missing'} differ); "
                         "was it made for another architecture?")
    remove_channels(model, groups, plan["keep"])
    return model


def group_widths(model: nn.Module, example_input: torch.Tensor | None = None) -> dict[str, int]:
    """Channels per prunable group, by name (what :func:`prune_channels` sees)."""
    return {g.name: len(g) for g in channel_groups(model, _example(model, example_input))}
