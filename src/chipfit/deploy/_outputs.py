"""A network's outputs as the ONNX files name them and as the checks compare them (one array per batch)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn


def output_names(model: nn.Module) -> list[str]:
    """The graph's output names: ``logits`` for a classifier or segmenter; a network with several outputs names them
    in an ``output_names`` attribute (the FCOS detector: ``cls``, ``box``, ``ctr``)."""
    return list(getattr(model, "output_names", ("logits",)))


def flat_outputs(out: Any) -> Any:
    """One array (N, ...) per image batch: a single output as it is, several flattened per image and joined, so that
    one comparison covers all of them."""
    import numpy as np

    outs = [o.detach().float().numpy() if isinstance(o, torch.Tensor) else np.asarray(o)
            for o in (out if isinstance(out, (tuple, list)) else (out,))]
    return outs[0] if len(outs) == 1 else np.concatenate([o.reshape(len(o), -1) for o in outs], axis=1)
