"""chipfit: design vision networks that run fast and cheaply on low-power AI chips.

The public API is re-exported here lazily, so `import chipfit` stays fast and does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "profile": ("chipfit.api", "profile"),
    "Profile": ("chipfit.cost", "Profile"),
    "Precision": ("chipfit.cost", "Precision"),
    "load_chip": ("chipfit.hw", "load_chip"),
    "list_chips": ("chipfit.hw", "list_chips"),
    "create_model": ("chipfit.models", "create_model"),
    "list_models": ("chipfit.models", "list_models"),
    "simulate": ("chipfit.api", "simulate"),
    "load_model": ("chipfit.load", "load_model"),
    "compress": ("chipfit.compress", None),  # the package is callable: chipfit.compress(model, config, data=...)
}

if TYPE_CHECKING:  # pragma: no cover
    from chipfit.api import profile, simulate  # noqa: F401
    from chipfit.cost import Precision, Profile  # noqa: F401
    from chipfit.hw import list_chips, load_chip  # noqa: F401
    from chipfit.load import load_model  # noqa: F401
    from chipfit.models import create_model, list_models  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'chipfit' has no attribute {name!r}")


__all__ = ["__version__", *sorted(_LAZY)]
