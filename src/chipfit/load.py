"""The loader: a model spec -> a module (or an ONNX graph), for every verb.

A spec is one of

- an ``nn.Module`` (taken as it is);
- a built-in name (``quadranet_s28``; ``chipfit models`` lists them);
- a ``package.module:factory`` path (the factory is called, or the attribute taken if it is a module);
- an ``.onnx`` file;
- a ``ModelConfig`` JSON file (an architecture as data, e.g. one a search found);
- a checkpoint: a training checkpoint (``best.pt``, ``last.pt``), a compressed one (``compressed.pt``), or a run
  folder holding ``best.pt`` (training) or ``compressed.pt`` (``chipfit compress --out``).

This module sits at the top of the package: it knows every stage's checkpoints, so that nothing below it has to.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.nn as nn

from chipfit.models import ModelConfig, build_model, create_model, get_entry
from chipfit.train.checkpoint import CheckpointError, load_checkpoint

CHECKPOINT_SUFFIXES = (".pt", ".pth")
RUN_FILES = ("best.pt", "compressed.pt")


@dataclass
class LoadedModel:
    """What a spec names.

    Attributes:
        module: the network (``None`` for an ONNX file).
        onnx: the ONNX file (``None`` otherwise).
        input_shape: the input it is meant for, (1, C, H, W), where the spec says (built-in names, configs,
            checkpoints); ``None`` where it does not.
        name: a label for reports: the built-in name, the factory, the file's stem or the run folder's name.
        kind: ``module``, ``builtin``, ``factory``, ``onnx``, ``config``, ``checkpoint`` or ``compressed``.
        registry_name: the built-in name of the architecture, where there is one (kept in checkpoints).
        state: the checkpoint's contents, for a checkpoint.
        path: the file it came from.
    """

    module: nn.Module | None
    onnx: Path | None
    input_shape: tuple[int, ...] | None
    name: str
    kind: str
    registry_name: str | None = None
    state: dict[str, Any] | None = None
    path: Path | None = None

    @property
    def target(self) -> nn.Module | Path:
        """The module, or the ONNX file: what the cost stage and the simulator take."""
        return self.module if self.module is not None else self.onnx  # type: ignore[return-value]

    @property
    def norm(self) -> dict[str, Any]:
        """The input normalisation a checkpoint was trained with (``mean``, ``std``), or ``{}``."""
        return json.loads((self.state or {}).get("norm", "{}"))


def _shape(cfg: Any) -> tuple[int, ...] | None:
    if cfg is not None and hasattr(cfg, "input_hw"):  # a dense network's (height, width)
        return (1, cfg.in_chans, *cfg.input_hw)
    if cfg is None or not hasattr(cfg, "input_size"):
        return None
    return (1, cfg.in_chans, cfg.input_size, cfg.input_size)


def checkpoint_path(spec: str | Path) -> Path | None:
    """The checkpoint file a spec names (a ``.pt`` file, or a run folder's ``best.pt`` / ``compressed.pt``)."""
    path = Path(spec)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return path
    if path.is_dir():
        for name in RUN_FILES:
            if (path / name).is_file():
                return path / name
    return None


def load_model(spec: str | Path | nn.Module, *, num_classes: int | None = None, in_chans: int | None = None,
               input_size: int | None = None, **factory_kwargs: Any) -> LoadedModel:
    """Resolve ``spec`` (see the module docstring) into a :class:`LoadedModel`.

    Args:
        spec: the model spec.
        num_classes, in_chans, input_size: size a network for a data set: a built-in one takes the classes and
            channels (it keeps its own input size), a config all three; modules, ONNX files and checkpoints are what
            they are.
        factory_kwargs: passed on to a built-in constructor or a ``module:factory``.

    Raises:
        ValueError: an unknown name (with close names), a missing file, a factory that fails or returns no module,
            a config that does not validate; ``CheckpointError`` (a ``ValueError``) for an unreadable checkpoint.
    """
    if isinstance(spec, nn.Module):
        return LoadedModel(spec, None, _shape(getattr(spec, "config", None)), type(spec).__name__, "module")
    text = str(spec)
    path = Path(text)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise ValueError(f"ONNX file {text}: no such file")
        return LoadedModel(None, path, None, path.stem, "onnx", path=path)
    ckpt = checkpoint_path(path)
    if ckpt is not None:
        return _from_checkpoint(ckpt)
    if path.is_dir():
        raise ValueError(f"{text} is a folder without a checkpoint ({' or '.join(RUN_FILES)}): give a run folder of "
                         "chipfit train or chipfit compress, or the checkpoint file")
    if path.suffix.lower() == ".json":
        return _from_config(path, num_classes, in_chans, input_size)
    if ":" in text and not path.exists():
        return _from_factory(text, factory_kwargs)
    sized = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v is not None}
    entry = get_entry(text)
    module = entry.factory(**sized, **factory_kwargs)
    shape = _shape(getattr(module, "config", None)) or entry.input_shape
    return LoadedModel(module, None, shape, text, "builtin", registry_name=text)


def _from_config(path: Path, num_classes: int | None, in_chans: int | None, input_size: int | None) -> LoadedModel:
    if not path.is_file():
        raise ValueError(f"model config {path}: no such file")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON model config ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a model config must be a JSON object of fields (name, stages, ...), "
                         f"got a {type(raw).__name__}")
    try:
        cfg = ModelConfig.from_dict(raw)
    except TypeError as e:
        raise ValueError(f"{path}: not a valid model config ({e})") from None
    sized = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans), ("input_size", input_size))
             if v is not None}
    if sized:
        cfg = cfg.replace(**sized)
    module = build_model(cfg)
    return LoadedModel(module, None, _shape(cfg), path.stem, "config", path=path)


def _from_factory(spec: str, kwargs: dict[str, Any]) -> LoadedModel:
    mod_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:  # a user's own package in the working directory, as uvicorn does
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import {mod_name!r} (from {spec!r}): {e}") from e
    except Exception as e:  # the user's module failed while importing: say where, in one line
        raise ValueError(f"importing {mod_name!r} (from {spec!r}) raised {type(e).__name__}: {_first_line(e)}") from e
    factory = getattr(mod, attr, None)
    if factory is None:
        raise ValueError(f"{mod_name!r} has no attribute {attr!r}")
    try:
        model = factory(**kwargs) if callable(factory) and not isinstance(factory, nn.Module) else factory
    except Exception as e:
        raise ValueError(f"{spec} raised {type(e).__name__}: {_first_line(e)}") from e
    if not isinstance(model, nn.Module):
        raise ValueError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return LoadedModel(model, None, _shape(getattr(model, "config", None)), attr, "factory")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def _from_checkpoint(path: Path) -> LoadedModel:
    """Rebuild the network a checkpoint was saved from (its spec) and load its weights; a compressed checkpoint
    gets its transforms (pruning, folding, quantization) re-applied first.

    What the file holds is checked before anything is built for real: the spec's network is first built on the meta
    device (no memory) and its tensors compared with the checkpoint's, so a damaged spec (a width of 10^9, a wrong
    layer) is a ``CheckpointError`` naming the file, never an allocation of terabytes.
    """
    import torch

    from chipfit.train.checkpoint import check_weights, error_reason

    state = load_checkpoint(path)  # checked: a JSON object as spec, a mapping of names to tensors as weights
    spec = json.loads(state["model_spec"])
    weights = state["model"]
    config, reg_name = spec.get("config"), spec.get("name")
    if config and isinstance(config, dict) and "arch" in config:  # a segmenter or detector (chipfit.models.dense)
        from chipfit.models.dense import build_dense, dense_config_from_dict

        try:
            dcfg = dense_config_from_dict(config)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise CheckpointError(f"{path}: the dense model config it holds is invalid ({error_reason(e)})") from None

        def build() -> nn.Module:
            return build_dense(dcfg)
    elif config:
        try:
            cfg = ModelConfig.from_dict(config)
        except (ValueError, TypeError, KeyError, AttributeError) as e:  # what a config's own checks raise
            raise CheckpointError(f"{path}: the model config it holds is invalid ({error_reason(e)})") from None
        blocks = sum(s.depth for s in cfg.stages)
        if blocks > len(weights):  # every block has weights: refuse before building a million blocks
            raise CheckpointError(f"{path}: its model config has {blocks} blocks but the checkpoint holds only "
                                  f"{len(weights)} tensors")

        def build() -> nn.Module:
            return build_model(cfg)
    elif reg_name:
        if not isinstance(reg_name, str):
            raise CheckpointError(f"{path}: its model spec names the model {str(reg_name)[:60]!r}, not a string")
        try:
            get_entry(reg_name)
        except ValueError as e:
            raise CheckpointError(f"{path}: saved for an {str(e)[:200]}") from None

        def build() -> nn.Module:
            return create_model(reg_name)
    else:
        raise CheckpointError(f"{path}: the checkpoint names no architecture (class {str(spec.get('class'))[:60]}); "
                              "rebuild the model in Python and load state['model']")
    compressed = "compress_config" in state
    try:
        with torch.device("meta"):
            skeleton = build()
    except (ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot build the network its model spec describes ({error_reason(e)})") \
            from None
    if not compressed:
        check_weights(skeleton, weights, path)
    else:  # pruned and quantized weights differ from the float network's; but never by a factor of a thousand
        need = sum(t.numel() for t in skeleton.state_dict().values())
        have = sum(t.numel() for t in weights.values())
        if need > 1000 * have + 10**6:
            raise CheckpointError(f"{path}: its model spec describes a network of {need:,} numbers, far more than "
                                  f"the {have:,} the compressed checkpoint holds")
        try:
            plan = json.loads(state.get("prune_plan") or "null")
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: its pruning plan is not JSON text ({error_reason(e)})") from None
        if plan is not None:  # the plan is replayed on an input of its shape: refuse one that cannot be, or is huge
            shape = plan.get("input_shape") if isinstance(plan, dict) else None
            chans = getattr(getattr(skeleton, "config", None), "in_chans", None)
            if not (isinstance(shape, list) and len(shape) == 4 and all(type(d) is int and d > 0 for d in shape)
                    and shape[0] * shape[1] * shape[2] * shape[3] <= 2**24 and chans in (None, shape[1])):
                raise CheckpointError(f"{path}: its pruning plan's input_shape must be [1, {chans or 'C'}, H, W] "
                                      f"(at most 2^24 numbers), got {str(shape)[:60]}")
    model = build()
    kind = "checkpoint"
    if compressed:
        from chipfit.compress import rebuild_compressed

        try:
            model, kind = rebuild_compressed(model, state), "compressed"
        except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as e:  # from the file's contents
            raise CheckpointError(f"{path}: cannot rebuild the compressed network it holds ({error_reason(e)})") \
                from None
    else:
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:  # names and shapes were checked; what is left is a tensor's type
            raise CheckpointError(f"{path}: cannot load its weights ({error_reason(e)})") from None
    name = path.parent.name if path.name in ("best.pt", "last.pt", "compressed.pt") else path.stem
    return LoadedModel(model, None, _shape(getattr(model, "config", None)), name, kind,
                       registry_name=reg_name if isinstance(reg_name, str) else None, state=state, path=path)
