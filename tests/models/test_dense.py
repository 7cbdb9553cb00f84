"""Every registered segmenter and detector builds, runs at its input, has the right output shapes, round-trips through
its JSON config and is costed with no uncosted op; the backbones give the maps their strides say; impossible dense
configs fail when made; the small networks of one task stay within 25% of each other in MACs."""

from __future__ import annotations

import json

import pytest
import torch

from chipfit.cost import count
from chipfit.models import ModelConfig, StageConfig, create_model, get_entry, list_models
from chipfit.models.config import BlockConfig
from chipfit.models.dense import (
    DENSE_BACKBONES,
    Backbone,
    BiSeNetConfig,
    FastSCNNConfig,
    FCOSConfig,
    build_dense,
    dense_backbone,
    dense_config_from_dict,
    feature_taps,
)

from ._macs import count_macs

DENSE = list_models(task="segment") + list_models(task="detect")
SMALL = [n for n in DENSE if get_entry(n).input_shape[-1] <= 96]
LARGE = [n for n in DENSE if n not in SMALL]


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _check_outputs(model: torch.nn.Module, out, x: torch.Tensor, num_classes: int) -> None:
    b, _, h, w = x.shape
    if isinstance(out, torch.Tensor):  # a segmenter
        assert out.shape == (b, num_classes + 1, h, w)
    else:
        a = model.points(h, w)[0].shape[0]
        cls, box, ctr = out
        assert cls.shape == (b, a, num_classes) and box.shape == (b, a, 4) and ctr.shape == (b, a)
        assert (box >= 0).all()


def test_registry_keeps_classifier_listing_and_names_tasks():
    classifiers = list_models()
    assert classifiers and not set(classifiers) & set(DENSE)
    assert all(get_entry(n).task == "classify" for n in classifiers)
    assert set(list_models(task="all")) == set(classifiers) | set(DENSE)
    assert list_models("fcos") == list_models(task="detect")
    assert {"bisenet_quadranet_s", "bisenet_mobilenetv2_s", "bisenet_shufflenetv2_s", "bisenet_convnext_s",
            "fastscnn_s", "bisenet_mobilenetv2", "bisenet_quadranet"} <= set(list_models(task="segment"))
    assert {"fcos_quadranet_s", "fcos_mobilenetv2_s", "fcos_shufflenetv2_s", "fcos_convnext_s", "fcos_mobilenetv2",
            "fcos_quadranet"} <= set(list_models(task="detect"))
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        list_models(task="segmentation")


@pytest.mark.parametrize("name", SMALL)
def test_small_builds_runs_backpropagates_and_round_trips(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    cfg = model.config
    assert cfg.name == name and cfg.num_classes == 5 and cfg.input_shape() == get_entry(name).input_shape
    x = torch.randn(2, *get_entry(name).input_shape[1:])
    out = model(x)
    _check_outputs(model, out, x, 5)
    loss = sum(o.square().mean() for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    twin_cfg = dense_config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert twin_cfg == cfg and type(twin_cfg) is type(cfg)
    twin = build_dense(twin_cfg)
    twin.load_state_dict(model.state_dict())
    model.eval()
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))


@pytest.mark.parametrize("name", SMALL)
def test_small_options_and_other_sizes(name):
    """num_classes / in_chans / input_size reach the config; a non-square input that is not a multiple of 32 runs."""
    model = create_model(name, num_classes=3, in_chans=3, input_size=(64, 80)).eval()
    assert model.config.in_chans == 3 and model.config.input_hw == (64, 80)
    x = torch.randn(1, 3, 72, 100)
    with torch.no_grad():
        out = model(x)
    _check_outputs(model, out, x, 3)


@pytest.mark.parametrize("name", DENSE)
def test_costed_with_no_uncosted_op(name):
    """chipfit.cost counts every op at the registered input (the large ones on meta tensors: no arithmetic)."""
    entry = get_entry(name)
    with torch.device("meta") if name in LARGE else torch.device("cpu"):
        model = create_model(name).eval()
    prof = count(model, entry.input_shape)
    assert not prof.unsupported, f"{name}: uncosted ops {prof.unsupported}"
    assert prof.total.params == _params(model)
    assert prof.total.macs > 0


@pytest.mark.parametrize("name", SMALL)
def test_cost_agrees_with_hook_count(name):
    model = create_model(name).eval()
    prof = count(model, get_entry(name).input_shape)
    assert prof.total.macs == pytest.approx(count_macs(model, get_entry(name).input_shape).macs, rel=0.01)


@pytest.mark.parametrize("task", ["segment", "detect"])
def test_small_families_of_one_task_have_similar_macs(task):
    """The 96x96 networks cost 20-60 MMACs and the four backbone families of a task stay within 25% of each other."""
    names = [n for n in SMALL if get_entry(n).task == task and get_entry(n).family != "fastscnn"]
    macs = {n: count(create_model(n).eval(), get_entry(n).input_shape).total.macs for n in names}
    assert len(macs) == 4
    assert all(20e6 <= m <= 60e6 for m in macs.values()), macs
    assert max(macs.values()) <= 1.25 * min(macs.values()), macs


def test_small_backbones_have_similar_macs():
    macs = {n: count(Backbone(dense_backbone(n)).eval(), (1, 1, 96, 96)).total.macs
            for n in ("quadranet_s", "convnext_s", "mobilenetv2_s", "shufflenetv2_s")}
    assert max(macs.values()) <= 1.25 * min(macs.values()), macs


def test_backbone_taps_and_sizes():
    for name, make in DENSE_BACKBONES.items():
        cfg = make(3, 128)
        bb = Backbone(cfg).eval()
        x = torch.randn(1, 3, 128, 160)
        with torch.no_grad():
            maps = bb(x)
        assert bb.strides == (4, 8, 16, 32)
        assert [m.shape[1] for m in maps] == list(bb.out_channels), name
        assert [tuple(m.shape[-2:]) for m in maps] == [(128 // s, 160 // s) for s in (4, 8, 16, 32)], name
        assert [tuple(m.shape[-2:]) for m in maps] == list(bb.feature_sizes(128, 160)), name
    # MobileNetV2's taps: the last stage at each stride (stages 1, 2, 4, 6: 24, 32, 96, 320 channels)
    assert feature_taps(dense_backbone("mobilenetv2_100")) == ((1, 24), (2, 32), (4, 96), (6, 320))
    # ShuffleNetV2's stride-4 map is its pooled stem
    assert feature_taps(dense_backbone("shufflenetv2_x1_0"))[0] == (-1, 24)


def test_backbone_feature_sizes_on_odd_inputs():
    for name in ("quadranet_s", "mobilenetv2_s", "shufflenetv2_s"):
        bb = Backbone(dense_backbone(name)).eval()
        with torch.no_grad():
            maps = bb(torch.randn(1, 1, 101, 77))
        assert [tuple(m.shape[-2:]) for m in maps] == list(bb.feature_sizes(101, 77)), name


def test_any_metaformer_config_is_a_backbone():
    """A HorNet-like config (gnConv) with a stride-4 stem serves as BiSeNet's context path."""
    block = BlockConfig("hor", 7, 3.0, order=3, layer_scale=1.0)
    stages = tuple(StageConfig(1, c, block, stride=1 if i == 0 else 2) for i, c in enumerate((16, 32, 64, 128)))
    hornet = ModelConfig("metaformer", stages, stem_kernel=4, stem_stride=4, name="hornet_dense")
    model = build_dense(BiSeNetConfig(hornet, num_classes=4, in_chans=1, input_hw=(64, 64),
                                      spatial_channels=(8, 16, 32), context_channels=32, fusion_channels=32,
                                      head_channels=32)).eval()
    assert model.config.backbone.in_chans == 1 and model.config.backbone.input_size == 64
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 5, 64, 64)


def test_impossible_dense_configs_fail_when_made():
    small_stem = get_entry("quadranet_s28").factory().config  # stem stride 2: maps at strides 2/4/8/16
    with pytest.raises(ValueError, match=r"strides \[2, 4, 8, 16\], not at \[32\]"):
        BiSeNetConfig(small_stem)
    with pytest.raises(ValueError, match=r"pool_bins \(1, 2\) must divide the 3x3 map"):
        FastSCNNConfig(input_hw=(96, 96), pool_bins=(1, 2))
    with pytest.raises(ValueError, match="norm_groups 32 must divide channels 48"):
        FCOSConfig(dense_backbone("quadranet_s"), channels=48)
    with pytest.raises(ValueError, match="norm must be one of gn, bn"):
        FCOSConfig(dense_backbone("quadranet_s"), norm="ln")
    with pytest.raises(ValueError, match="input_hw must be a positive int or"):
        FCOSConfig(dense_backbone("quadranet_s"), input_hw=(0, 96))
    with pytest.raises(ValueError, match="unknown dense backbone 'quadranet_ss'.*did you mean 'quadranet_s'"):
        dense_backbone("quadranet_ss")
    with pytest.raises(ValueError, match="'arch' key"):
        dense_config_from_dict({"num_classes": 3})
    d = FastSCNNConfig().to_dict()
    with pytest.raises(ValueError, match=r"unknown keys \['widht'\]"):
        dense_config_from_dict({**d, "widht": 3})
    with pytest.raises(ValueError, match="describes a 'fastscnn' network, not 'fcos'"):
        FCOSConfig.from_dict(d)
    with pytest.raises(TypeError, match="build_dense takes"):
        build_dense(small_stem)


def test_dense_config_owns_input_channels_and_size():
    """The backbone's in_chans / input_size come from the dense config, so one place holds each."""
    cfg = FCOSConfig(dense_backbone("mobilenetv2_100"), num_classes=3, in_chans=1, input_hw=(384, 1280))
    assert cfg.backbone.in_chans == 1 and cfg.backbone.input_size == 384 and cfg.backbone.num_classes == 1
    assert cfg.replace(in_chans=3).backbone.in_chans == 3


def test_fastscnn_default_is_the_paper_size():
    """Fast-SCNN for Cityscapes has 1.11M parameters (Poudel et al., 2019); our bins 1/2/4/8 change it by 2%."""
    with torch.device("meta"):
        model = build_dense(FastSCNNConfig())
    assert _params(model) / 1e6 == pytest.approx(1.11, rel=0.03)
