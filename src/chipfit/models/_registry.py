"""Name -> constructor registry for the model zoo.

Registered constructors are a few lines each: they fill a config dataclass and call one builder.
Each entry also records the input shape the network is meant for, so `chipfit profile NAME` needs no
`--input` for built-in networks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    """

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    family: str
    description: str = ""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, input_shape: tuple[int, ...] = (1, 3, 224, 224), family: str = "", description: str = ""
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model constructor under ``name``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().split("\n\n")[0]
        _REGISTRY[name] = ModelEntry(name, fn, tuple(input_shape), family, description or " ".join(doc.split()))
        return fn

    return wrap


def _load_zoo() -> None:
    # Importing the family modules registers their constructors; done once, on first use.
    from chipfit.models import _zoo  # noqa: F401


def unknown_model_message(name: str) -> str:
    """A user-facing message for an unknown model name, with the closest registered names."""
    _load_zoo()
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown model {name!r}.{hint} `chipfit models` lists the {len(_REGISTRY)} built-in networks."


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` with close matches if unknown."""
    _load_zoo()
    if name not in _REGISTRY:
        raise ValueError(unknown_model_message(name))
    return _REGISTRY[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered network, e.g. ``create_model("quadranet36_t", num_classes=10)``."""
    return get_entry(name).factory(**kwargs)


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, sorted; optionally only one family."""
    _load_zoo()
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)
