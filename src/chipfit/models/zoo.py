"""The registered networks: every family is imported here (which registers its constructors), then looked up.

Add a family here when you add its file.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch.nn as nn

from chipfit.models import convnext, hornet, mobilenetv2, quadranet, shufflenetv2, swin  # noqa: F401
from chipfit.models._registry import _REGISTRY, TASKS, ModelEntry
from chipfit.models.dense import networks  # noqa: F401  (segmenters and detectors)


def unknown_model_message(name: str) -> str:
    """A user-facing message for an unknown model name, with the closest registered names."""
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown model {name!r}.{hint} `chipfit models` lists the {len(_REGISTRY)} built-in networks."


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` with close matches if unknown."""
    if name not in _REGISTRY:
        raise ValueError(unknown_model_message(name))
    return _REGISTRY[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered network, e.g. ``create_model("quadranet36_t", num_classes=10)``."""
    return get_entry(name).factory(**kwargs)


def list_models(family: str | None = None, task: str | None = None) -> list[str]:
    """Registered model names, sorted; optionally only one family.

    Args:
        family: only this family, e.g. ``quadranet`` or ``fcos``.
        task: ``classify``, ``segment``, ``detect`` or ``all``; by default the classifiers, or every network of
            ``family`` when one is given (a family's networks share one task).
    """
    if task is None:
        task = "all" if family else "classify"
    if task != "all" and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)} or all")
    return sorted(n for n, e in _REGISTRY.items()
                  if (family is None or e.family == family) and task in ("all", e.task))
