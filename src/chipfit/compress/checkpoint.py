"""Compressed checkpoints: ``compressed.pt`` holds the float network's spec, the compressed weights, the compression
config and the pruning plan, so that the compressed network is rebuilt from a freshly built float one.

The loader (``chipfit.load``) builds the float network from the spec and calls :func:`rebuild_compressed`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn as nn

from chipfit.compress.config import CompressConfig


def save_compressed(path: Path, model: nn.Module, config: CompressConfig, plan: dict | None, model_name: str | None,
                    data: Any) -> Path:
    """A weights-only checkpoint that :func:`rebuild_compressed` (and ``chipfit eval``) rebuilds.

    Args:
        path: the file to write.
        model: the compressed network.
        config: how it was compressed.
        plan: the channel-pruning plan, or None.
        model_name: registry name of the float network (kept in the spec).
        data: the :class:`~chipfit.data.DataBundle` it was compressed on (its classes and normalisation are kept),
            or None.
    """
    from chipfit.train.checkpoint import model_spec, save_checkpoint

    state = {"model_spec": model_spec(model, model_name), "model": model.state_dict(),
             "compress_config": json.dumps(config.to_dict()), "prune_plan": json.dumps(plan)}
    if data is not None:
        state["classes"] = json.dumps(data.classes)
        state["norm"] = json.dumps({"mean": data.mean, "std": data.std})
    return save_checkpoint(path, state)


def rebuild_compressed(model: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Apply a compressed checkpoint's transforms to a freshly built float ``model`` and load its weights."""
    from chipfit.compress.fold import fold_bn

    cfg = CompressConfig.from_dict(json.loads(state["compress_config"]))
    plan = json.loads(state.get("prune_plan") or "null")
    if plan:  # pruned before folding; a plan made on a folded network fits the unfolded one too (BN passes channels)
        from chipfit.compress.prune import apply_plan

        model = apply_plan(model, plan)
    if cfg.fold:
        fold_bn(model)
    if cfg.quant is not None:
        from chipfit.compress.quant import quantize

        quantize(model, cfg.quant)
    model.load_state_dict(state["model"])
    return model.eval()
