"""Swin-like networks (Liu et al., ICCV 2021) on the metaformer skeleton: window attention as the spatial mixer.

Swin-T: C=96, depths [2,2,6,2], heads [3,6,12,24], window 7, shifted by 3 in every second block; published 28M
params / 4.5G MACs at 224x224. Differences from Swin, kept to share the skeleton: a 4x4 conv + LayerNorm stem (Swin's
patch embedding is the same conv with its norm), LayerNorm + 2x2 stride-2 conv downsamplers instead of patch merging
(LayerNorm + linear 4C -> 2C on 2x2 neighbourhoods: the same weights, laid out as a conv), pooling before the last
LayerNorm, and no layer scale (Swin has none).

The small variants (``swin_s28``, ``swin_s32``) use the zoo's shared small skeleton (``_common``): a 2x2 stride-2
stem, C=24, depths [1,1,3,1], heads [1,2,4,8], MLP ratio 3, and as window the largest divisor of the map side up to
8, so windows tile the maps without padding (7/7/3/1 at 28x28, 8/8/4/2 at 32x32).
"""

from __future__ import annotations

from chipfit.models._common import SMALL_MLP_RATIO, SMALL_STEM_STRIDE, metaformer, small_metaformer, widths
from chipfit.models._registry import register_model
from chipfit.models.build import Network
from chipfit.models.config import BlockConfig


@register_model("swin_t", family="swin")
def swin_t(*, num_classes: int = 1000, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """Swin-T-like: C=96, depths [2,2,6,2], heads [3,6,12,24], window 7; conv downsamplers."""
    blocks = [BlockConfig("swin", window_size=7, num_heads=h, layer_scale=0.0) for h in (3, 6, 12, 24)]
    return metaformer("swin_t", (2, 2, 6, 2), widths(96), blocks, num_classes=num_classes, in_chans=in_chans,
                      drop_path_rate=drop_path_rate)


def swin_small(size: int, *, num_classes: int, in_chans: int, drop_path_rate: float = 0.0) -> Network:
    """Swin-like network for ``size`` x ``size`` images on the zoo's small skeleton, windows tiling the maps."""
    maps = [size // SMALL_STEM_STRIDE // 2**i for i in range(4)]
    windows = [max(w for w in range(1, min(m, 8) + 1) if m % w == 0) for m in maps]
    blocks = [BlockConfig("swin", mlp_ratio=SMALL_MLP_RATIO, window_size=w, num_heads=h, layer_scale=0.0)
              for w, h in zip(windows, (1, 2, 4, 8), strict=True)]
    return small_metaformer(f"swin_s{size}", size, blocks, num_classes=num_classes, in_chans=in_chans,
                            drop_path_rate=drop_path_rate)


@register_model("swin_s28", input_shape=(1, 1, 28, 28), family="swin")
def swin_s28(*, num_classes: int = 10, in_chans: int = 1, drop_path_rate: float = 0.0) -> Network:
    """Swin-like for 28x28: stem 2x2 stride 2, C=24, depths [1,1,3,1], heads [1,2,4,8], windows 7/7/3/1."""
    return swin_small(28, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)


@register_model("swin_s32", input_shape=(1, 3, 32, 32), family="swin")
def swin_s32(*, num_classes: int = 10, in_chans: int = 3, drop_path_rate: float = 0.0) -> Network:
    """Swin-like for 32x32: stem 2x2 stride 2, C=24, depths [1,1,3,1], heads [1,2,4,8], windows 8/8/4/2."""
    return swin_small(32, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate)
