"""Checkpoints: written atomically (temporary file + rename), read with weights-only loading.

A checkpoint holds only tensors and plain containers (no pickled objects), so ``torch.load(weights_only=True)``
reads it: the model's config as a JSON string, weights, optimiser state, the step and epoch, and every RNG state
needed to continue exactly where the run stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match the requested model."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with weights-only loading (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a chipfit checkpoint readable with weights-only loading "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or "model" not in state or "model_spec" not in state:
        raise CheckpointError(f"{path}: not a chipfit checkpoint (no model weights or model spec)")
    return state


def model_spec(model: torch.nn.Module, name: str | None = None) -> str:
    """What identifies the architecture of ``model``, as JSON: its registry name and its config dataclass."""
    cfg = getattr(model, "config", None)
    cfg_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else None
    return json.dumps({"name": name, "class": type(model).__name__, "config": cfg_dict}, sort_keys=True)


def check_spec(saved: str, model: torch.nn.Module, name: str | None, path: str | Path) -> None:
    """Refuse a checkpoint whose architecture differs from the requested model, saying what differs."""
    a, b = json.loads(saved), json.loads(model_spec(model, name))
    if a.get("config") is not None and b.get("config") is not None:
        if a["config"] != b["config"]:
            diff = sorted(k for k in set(a["config"]) | set(b["config"]) if a["config"].get(k) != b["config"].get(k))
            raise CheckpointError(f"{path}: saved for a different architecture (config differs in {', '.join(diff)}); "
                                  f"saved model {a.get('name') or a.get('class')}, requested "
                                  f"{b.get('name') or b.get('class')}")
    elif a.get("class") != b.get("class") or (a.get("name") and b.get("name") and a["name"] != b["name"]):
        raise CheckpointError(f"{path}: saved for {a.get('name') or a.get('class')}, requested "
                              f"{b.get('name') or b.get('class')}")
