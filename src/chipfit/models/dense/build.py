"""The one builder of dense networks: ``build_dense(config) -> nn.Module``, and configs back from JSON dicts."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from chipfit.models.dense.detect import FCOS, FCOSConfig
from chipfit.models.dense.segment import BiSeNet, BiSeNetConfig, FastSCNN, FastSCNNConfig

DenseConfig = BiSeNetConfig | FastSCNNConfig | FCOSConfig
# the ``arch`` key of a config's dict -> (config class, network class)
ARCHS: dict[str, tuple[type, type[nn.Module]]] = {
    "bisenet": (BiSeNetConfig, BiSeNet), "fastscnn": (FastSCNNConfig, FastSCNN), "fcos": (FCOSConfig, FCOS),
}


def build_dense(cfg: DenseConfig) -> nn.Module:
    """Build the segmenter or detector a config describes; the config checked itself when it was made."""
    for config_cls, net_cls in ARCHS.values():
        if type(cfg) is config_cls:
            return net_cls(cfg)
    raise TypeError(f"build_dense takes a BiSeNetConfig, FastSCNNConfig or FCOSConfig, got {type(cfg).__name__}; for "
                    "a dict use dense_config_from_dict(d), for a classifier's ModelConfig build_model")


def dense_config_from_dict(d: dict[str, Any]) -> DenseConfig:
    """The config a dense config's ``to_dict`` wrote (its ``arch`` key says which)."""
    arch = d.get("arch") if isinstance(d, dict) else None
    if arch not in ARCHS:
        raise ValueError(f"a dense config dict needs an 'arch' key of {', '.join(ARCHS)}, got {arch!r}")
    return ARCHS[arch][0].from_dict(d)
