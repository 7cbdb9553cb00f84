"""Configs are data: exact JSON round trips, old keys still read, and impossible architectures rejected when the config
is made, with a message naming the value."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from chipfit.models import BlockConfig, ModelConfig, StageConfig, build_model, get_entry


def _json(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _meta(*stages: StageConfig, **kw) -> ModelConfig:
    return ModelConfig("metaformer", stages, **kw)


def _config(name: str, **kw) -> ModelConfig:
    with torch.device("meta"):  # shapes only: building a 90M-parameter network costs nothing
        return get_entry(name).factory(**kw).config


def test_block_and_stage_round_trip_exactly():
    block = BlockConfig("hor", kernel_size=5, mlp_ratio=2.5, order=4, layer_scale=0.5, quadratic_channel_mixing=True,
                        memory_efficient=False)
    assert BlockConfig.from_dict(_json(block.to_dict())) == block
    stage = StageConfig(3, 64, block, stride=1)
    assert StageConfig.from_dict(_json(stage.to_dict())) == stage


@pytest.mark.parametrize("name", ["quadranet36_t", "swin_s32", "mobilenetv2_100", "shufflenetv2_s28"])
def test_model_config_round_trips_through_json(name):
    cfg = _config(name, num_classes=5)
    again = ModelConfig.from_dict(_json(cfg.to_dict()))
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert isinstance(again.stages, tuple) and isinstance(again.stages[0].block, BlockConfig)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BlockConfig().kernel_size = 3


def test_the_old_name_of_the_quadrafc_flag_still_reads():
    # configs/quadranet_s28_demo.json and older checkpoints spell it quadratic_mlp
    assert BlockConfig.from_dict({"kind": "quadra", "quadratic_mlp": True}).quadratic_channel_mixing is True


def test_replace_checks_again():
    cfg = _meta(StageConfig(1, 32, stride=1), StageConfig(1, 64, BlockConfig("swin", window_size=4)), input_size=64)
    assert cfg.replace(num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match="window larger than the map"):
        cfg.replace(input_size=16)


def test_stage_sizes_follow_the_skeleton():
    assert _config("quadranet36_t").stage_sizes() == (56, 28, 14, 7)
    assert _config("quadranet_s28").stage_sizes() == (14, 7, 3, 1)
    assert _config("shufflenetv2_x1_0").stage_sizes() == (28, 14, 7)
    assert _config("mobilenetv2_100").stage_sizes() == (112, 56, 28, 14, 14, 7, 7)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BlockConfig("quadratic"),
         r"unknown block kind 'quadratic' \(did you mean 'quadra'\?\); kinds: quadra, hor, swin,"),
        (lambda: BlockConfig(kernel_size=4), "kernel_size must be a positive odd number.*got 4"),
        (lambda: BlockConfig(order=0), "order must be >= 1, got 0"),
        (lambda: BlockConfig(layer_scale=-1.0), "layer_scale must be >= 0"),
        (lambda: StageConfig(-1, 8), "depth must be >= 0, got -1"),
        (lambda: StageConfig(1, 8, stride=3), "stride must be 1 or 2, got 3"),
        (lambda: ModelConfig("resnet", (StageConfig(1, 8),)), "unknown family 'resnet'"),
        (lambda: ModelConfig("metaformer", ()), "at least one stage"),
        (lambda: _meta(StageConfig(1, 24, BlockConfig("hor", order=5), stride=1)),
         r"stage 0: gnConv order 5 too high for width 24 .*2\^\(order-1\) = 16"),
        (lambda: _meta(StageConfig(1, 32, stride=1), StageConfig(1, 64, BlockConfig("swin", window_size=7)),
                       input_size=32), r"stage 1: window larger than the map \(window 7, map 4x4 at input 32\)"),
        (lambda: _meta(StageConfig(1, 48, BlockConfig("swin", num_heads=5), stride=1)),
         "stage 0: width 48 is not divisible by num_heads 5"),
        (lambda: _meta(*(StageConfig(1, 8) for _ in range(5)), input_size=32),  # maps 4, 2, 1, then nothing
         "stage 3: the map is 1x1 at input 32, too small for another stride-2 downsampler"),
        (lambda: _meta(StageConfig(1, 8, BlockConfig("mbv2"))),
         "stage 0: block kind 'mbv2' does not fit the metaformer family"),
        (lambda: ModelConfig("mobilenetv2", (StageConfig(1, 8, BlockConfig("quadra")),), stem_kernel=3),
         "block kind 'quadra' does not fit the mobilenetv2 family; it takes mbv2"),
        (lambda: ModelConfig("shufflenetv2", (StageConfig(1, 25, BlockConfig("shufflev2")),), stem_kernel=3),
         "width 25 is odd"),
        (lambda: ModelConfig("shufflenetv2", (StageConfig(1, 48, BlockConfig("shufflev2"), stride=1),),
                             stem_kernel=3), r"stride-1 ShuffleNetV2 unit keeps its width \(24\), got 48"),
        (lambda: ModelConfig("mobilenetv2", (StageConfig(1, 8, BlockConfig("mbv2")),)), "stem_kernel must be odd"),
        (lambda: _meta(StageConfig(1, 8), drop_path_rate=1.0), r"drop_path_rate must lie in \[0, 1\), got 1.0"),
        (lambda: _meta(StageConfig(1, 8), input_size=3), "input_size 3 is smaller than the stem's 4x4 kernel"),
        (lambda: ModelConfig.from_dict({"family": "metaformer", "stages": [], "depthz": 3}),
         r"model config: unknown keys \['depthz'\]"),
        (lambda: ModelConfig.from_dict({"family": "metaformer", "stages": [{"depth": 1, "channels": 8,
                                                                           "block": {"knd": "quadra"}}]}),
         r"stage 0 block: unknown keys \['knd'\]"),
    ],
)
def test_impossible_configs_fail_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_build_model_wants_a_config():
    with pytest.raises(TypeError, match="ModelConfig.from_dict"):
        build_model({"family": "metaformer"})
