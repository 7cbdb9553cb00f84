"""Pruning: unstructured magnitude pruning on the AGP schedule, and channel pruning that shrinks layers."""

from chipfit.compress.prune.structured import apply_plan, prune_channels
from chipfit.compress.prune.unstructured import AGPSchedule, prunable, prune_magnitude, sparsity

__all__ = ["AGPSchedule", "apply_plan", "prunable", "prune_channels", "prune_magnitude", "sparsity"]
