"""Name -> constructor registry for the model zoo: the table and the decorator that fills it.

Registered constructors are a few lines each: they fill a config dataclass and call one builder.
Each entry also records the input shape the network is meant for, so `chipfit profile NAME` needs no
`--input` for built-in networks. Looking names up is :mod:`chipfit.models.zoo`'s job, which imports the families
first; this module imports none of them, so the families can import it without an import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn


@dataclass(frozen=True)
class ModelEntry:
    """One registered network.

    Attributes:
        name: registry name, e.g. ``quadranet36_t``.
        factory: callable returning an ``nn.Module``; accepts ``num_classes`` and keyword options.
        input_shape: default input shape (N, C, H, W) the network is designed for.
        family: model family, e.g. ``quadranet`` or ``hornet``.
        description: one line for `chipfit models`.
        task: what the network outputs: ``classify`` (logits per image), ``segment`` (logits per pixel) or
            ``detect`` (per-location class logits, boxes and centerness); see :mod:`chipfit.models.dense`.
    """

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    family: str
    description: str = ""
    task: str = "classify"


TASKS = ("classify", "segment", "detect")
_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, input_shape: tuple[int, ...] = (1, 3, 224, 224), family: str = "", description: str = "",
    task: str = "classify",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model constructor under ``name``."""
    if task not in TASKS:
        raise ValueError(f"model {name!r}: unknown task {task!r}; tasks: {', '.join(TASKS)}")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().split("\n\n")[0]
        _REGISTRY[name] = ModelEntry(name, fn, tuple(input_shape), family, description or " ".join(doc.split()),
                                     task)
        return fn

    return wrap
