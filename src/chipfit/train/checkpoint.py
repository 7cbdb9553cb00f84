"""Checkpoints: written atomically (temporary file + rename), read with weights-only loading.

A checkpoint holds only tensors and plain containers (no pickled objects), so ``torch.load(weights_only=True)``
reads it: the model's config as a JSON string, weights, optimiser state, the step and epoch, and every RNG state
needed to continue exactly where the run stopped.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
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


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colour codes, which torch puts in its messages
# torch's advice around the reason a weights-only load failed: skipped to reach the reason itself
_ADVICE = ("Weights only load failed", "(1)", "(2)", "In PyTorch 2.6", "Re-running", "Please file an issue",
           "Check the documentation", "WeightsUnpickler error")


def error_reason(e: BaseException, most: int = 180) -> str:
    """``Type: the line of an exception's message that says what is wrong``, plain and cut to ``most`` characters.

    Some messages are empty, some span a page: torch's weights-only refusal puts its reason after paragraphs of
    advice, with colour codes.
    """
    text = _ANSI.sub("", str(e))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reasons = [ln for ln in lines if not ln.startswith(_ADVICE)]
    line = (reasons or lines or ["(no message)"])[0]
    out = f"{type(e).__name__}: {line}"
    return out if len(out) <= most else out[:most - 3] + "..."


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with weights-only loading (never unpickles arbitrary objects).

    Raises:
        CheckpointError: naming the file, for a file torch cannot read, or one without a model spec (JSON text of an
            object) and model weights (names -> tensors).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes), not a checkpoint; was its writing interrupted?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file (RuntimeError, UnpicklingError, EOFError...)
        raise CheckpointError(f"{path}: not a chipfit checkpoint readable with weights-only loading "
                              f"({error_reason(e)})") from None
    if not isinstance(state, dict) or "model" not in state or "model_spec" not in state:
        raise CheckpointError(f"{path}: not a chipfit checkpoint (no model weights or model spec)")
    spec = state["model_spec"]
    try:
        parsed = json.loads(spec) if isinstance(spec, str) else None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: its model spec is not JSON ({e})") from None
    if not isinstance(parsed, dict):
        got = type(spec).__name__ if not isinstance(spec, str) else f"JSON {type(parsed).__name__}"
        raise CheckpointError(f"{path}: its model spec must be JSON text of an object (name, class, config), got "
                              f"{got}")
    weights = state["model"]
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{path}: its model weights must be a mapping of names to tensors, got "
                              f"{type(weights).__name__}")
    for k, v in weights.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: its model weights must map names to tensors; entry {str(k)[:60]!r} is "
                                  f"a {type(v).__name__}")
    return state


def check_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Refuse weights whose names or shapes differ from ``model``'s (which may live on the meta device), saying
    which tensor differs first."""
    want = model.state_dict()
    missing = [k for k in want if k not in weights]
    extra = [k for k in weights if k not in want]
    wrong = [k for k in want if k in weights and tuple(weights[k].shape) != tuple(want[k].shape)]

    def first(keys: list[str]) -> str:
        more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
        return f"{keys[0][:80]!r}{more}"

    where = f"{path}: its weights do not fit the network its model spec describes"
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{where}: {first(wrong)} has shape {list(weights[k].shape)[:8]}, the network "
                              f"{list(want[k].shape)}")
    if missing:
        raise CheckpointError(f"{where}: {first(missing)} is missing")
    if extra:
        raise CheckpointError(f"{where}: {first(extra)} is not in the network")


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
