"""The model zoo: QuadraNet and the efficient and high-order baselines it is judged against.

``config`` holds the architecture dataclasses, ``blocks`` the blocks, ``build`` the one builder; each family has a
file (``quadranet``, ``hornet``, ``convnext``, ``swin``, ``mobilenetv2``, ``shufflenetv2``) of registered
constructors that fill a config, imported by ``zoo``, which looks names up.
``dense`` holds the segmenters and detectors (BiSeNet, Fast-SCNN, FCOS) on those backbones, with their own builder.
"""

from chipfit.models._registry import ModelEntry, register_model
from chipfit.models.build import Network, build_model
from chipfit.models.config import BlockConfig, ModelConfig, StageConfig
from chipfit.models.dense import BiSeNetConfig, FastSCNNConfig, FCOSConfig, build_dense, dense_config_from_dict
from chipfit.models.zoo import create_model, get_entry, list_models

__all__ = ["BlockConfig", "ModelConfig", "ModelEntry", "Network", "StageConfig", "build_model", "create_model",
           "get_entry", "list_models", "register_model"]

__all__ += ["BiSeNetConfig", "FCOSConfig", "FastSCNNConfig", "build_dense", "dense_config_from_dict"]
