"""Dense-task networks: semantic segmentation (BiSeNet, Fast-SCNN) and detection (FCOS with a PAN neck) on the
zoo's backbones, as data.

``backbone`` turns any zoo :class:`~chipfit.models.config.ModelConfig` into a multi-scale feature extractor (maps at
strides 4/8/16/32) and names dense backbone configs; ``segment`` and ``detect`` hold the configs (frozen dataclasses
with ``to_dict``/``from_dict``) and their networks; ``build`` the one builder, :func:`build_dense`; ``networks`` the
registered constructors (``create_model("fcos_quadranet_s")``, ``list_models(task="detect")``).
"""

from chipfit.models.dense.backbone import (
    DENSE_BACKBONES,
    DENSE_STRIDES,
    Backbone,
    dense_backbone,
    feature_sizes,
    feature_taps,
)
from chipfit.models.dense.build import ARCHS, DenseConfig, build_dense, dense_config_from_dict
from chipfit.models.dense.detect import FCOS, FCOSConfig, batched_nms, box_iou, nms
from chipfit.models.dense.segment import BiSeNet, BiSeNetConfig, FastSCNN, FastSCNNConfig

__all__ = ["ARCHS", "DENSE_BACKBONES", "DENSE_STRIDES", "FCOS", "Backbone", "BiSeNet", "BiSeNetConfig", "DenseConfig",
           "FCOSConfig", "FastSCNN", "FastSCNNConfig", "batched_nms", "box_iou", "build_dense", "dense_backbone",
           "dense_config_from_dict", "feature_sizes", "feature_taps", "nms"]
