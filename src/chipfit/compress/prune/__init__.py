"""Pruning: unstructured magnitude pruning on the AGP schedule, and channel pruning that shrinks layers (dependency
groups from the traced network: depgraph.py; how each layer is cut: layers.py; scoring, cutting and re-estimating
BatchNorm: channels.py; how much of each group: allocate.py)."""

from chipfit.compress.prune.channels import channel_scores, recalibrate_bn, remove_channels
from chipfit.compress.prune.depgraph import ChannelGroup, TraceError, channel_groups
from chipfit.compress.prune.structured import apply_plan, group_widths, prune_channels
from chipfit.compress.prune.unstructured import AGPSchedule, prunable, prune_magnitude, sparsity

__all__ = ["AGPSchedule", "ChannelGroup", "TraceError", "apply_plan", "channel_groups", "channel_scores",
           "group_widths", "prunable", "prune_channels", "prune_magnitude", "recalibrate_bn", "remove_channels",
           "sparsity"]
