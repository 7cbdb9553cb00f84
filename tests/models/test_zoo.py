"""Every registered model builds, runs forward and backward, and round-trips through its config; sizes at 224x224
match the published figures (or those QuadraNet's structure implies), counted independently of chipfit.cost; a tiny
QuadraNet learns; bad names get close matches."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from chipfit.models import ModelConfig, build, build_model, create_model, get_entry, list_models
from chipfit.models.blocks import MetaBlock

from ._macs import count_macs

FAMILIES = {"quadranet", "hornet", "convnext", "swin", "mobilenetv2", "shufflenetv2"}


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _on_meta(name: str, **kw) -> nn.Module:
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        return create_model(name, **kw).eval()


def _test_input(name: str) -> torch.Tensor:
    """The registered input for small variants; 64x64, batch 1, for the 224x224 networks (they all take it)."""
    shape = get_entry(name).input_shape
    return torch.randn((2, *shape[1:]) if shape[-1] <= 64 else (1, shape[1], 64, 64))


# 35M parameters and more: several seconds each to build twice and backpropagate
_BIG = {"quadranet36_s", "quadranet36_b", "quadranet25_s", "quadranet25_b", "hornet_s", "hornet_b"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _BIG else n for n in list_models()])
def test_builds_runs_backpropagates_and_round_trips(name, monkeypatch):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    x = _test_input(name)
    out = model(x)
    assert out.shape == (x.shape[0], 7)
    out.square().sum().backward()  # square: a plain sum has zero gradient into a LayerNorm'd head
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    cfg = ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict())))
    assert cfg == model.config and cfg.name == name and cfg.num_classes == 7
    # the twin's weights come from the state dict: skip the truncated-normal draw (seconds for 90M parameters)
    monkeypatch.setattr(build, "_trunc_normal_init", lambda m: None)
    twin = build_model(cfg)
    assert _params(twin) == _params(model)
    twin.load_state_dict(model.state_dict())
    model.eval()
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))


@pytest.mark.parametrize("name", list_models())
def test_registration(name):
    entry = get_entry(name)
    assert entry.family in FAMILIES and entry.description
    model = _on_meta(name, num_classes=3, in_chans=2)
    assert model.config.num_classes == 3 and model.config.in_chans == 2
    n, c, h, w = entry.input_shape
    if h != 224:  # small variants are made for their input and say their stem stride
        assert model.config.input_size == h and "stride" in entry.description
        assert model.config.in_chans == 2 and _on_meta(name).config.in_chans == c


# params (M), MACs (G) at 224x224, 1000 classes: published (HorNet, ConvNeXt, Swin, MobileNetV2, ShuffleNetV2 papers)
# or implied by QuadraNet's structure (shared/reference/quadranet.md)
SIZES = {
    "hornet_t": (22, 4.0), "hornet_s": (50, 8.8), "hornet_b": (87, 15.6), "convnext_t": (28.6, 4.5),
    "swin_t": (28.3, 4.5), "quadranet36_xxs": (1.85, 0.32), "quadranet36_xs": (6.39, 1.12),
    "quadranet36_t": (23.6, 4.13), "quadranet36_s": (51.6, 9.03), "quadranet36_b": (90.5, 15.8),
    "quadranet25_t": (16.3, 2.90), "quadranet25_s": (35.5, 6.34), "quadranet25_b": (62.1, 11.1),
    "mobilenetv2_100": (3.5, 0.300), "shufflenetv2_x1_0": (2.28, 0.146), "shufflenetv2_x0_5": (1.37, 0.041),
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_sizes_at_224_within_2_percent(name):
    params_m, macs_g = SIZES[name]
    model = _on_meta(name)
    assert _params(model) / 1e6 == pytest.approx(params_m, rel=0.02)
    assert count_macs(model, (1, 3, 224, 224)).macs / 1e9 == pytest.approx(macs_g, rel=0.02)


@pytest.mark.parametrize("name", ["quadranet36_t", "hornet_t", "swin_t", "mobilenetv2_100", "quadranet_s28"])
def test_hook_count_agrees_with_chipfit_profile(name):
    import chipfit

    prof = chipfit.profile(name)
    assert not prof.unsupported
    model = _on_meta(name)
    assert prof.total.params == _params(model)
    assert prof.total.macs == pytest.approx(count_macs(model, get_entry(name).input_shape).macs, rel=0.01)


def test_quadranet_skeleton():
    model = _on_meta("quadranet36_t", drop_path_rate=0.2)
    blocks = [m for m in model.modules() if isinstance(m, MetaBlock)]
    assert len(blocks) == 36 and all(b.kind == "quadra" for b in blocks)
    rates = [b.drop_path.drop_prob for b in blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
    stem = model.stem[0]
    assert stem.kernel_size == stem.stride == (4, 4)
    assert [s[0][1].stride for s in model.stages[1:]] == [(2, 2)] * 3  # LayerNorm + 2x2 conv stride 2
    assert model.head.fc.in_features == 512


def test_quadranet_initialisation():
    torch.manual_seed(0)
    model = create_model("quadranet_s32")
    stds = [m.weight_a.std().item() for m in model.modules() if hasattr(m, "weight_a")]
    assert stds and all(0.012 < s < 0.025 for s in stds)  # truncated normal std 0.02 (tails cut at +-2)
    assert all(m.bias is None or not m.bias.any() for m in model.modules() if isinstance(m, nn.Conv2d))


def test_options_reach_the_blocks():
    model = _on_meta("quadranet_s28", memory_efficient=False, quadratic_channel_mixing=True)
    block = model.config.stages[0].block
    assert block.memory_efficient is False and block.quadratic_channel_mixing is True
    assert type(model.stages[0][0].pw1).__name__ == "QuadraConv2d"


@pytest.mark.parametrize("name", ["swin_s28", "swin_s32"])
def test_small_swin_windows_tile_their_maps(name):
    cfg = _on_meta(name).config
    for stage, size in zip(cfg.stages, cfg.stage_sizes(), strict=True):
        assert stage.block.window_size <= size and size % stage.block.window_size == 0


def test_tiny_quadranet_overfits_one_batch():
    torch.manual_seed(0)
    model = create_model("quadranet_s28", num_classes=10)
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0)
    first = loss = None
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        if loss.item() < first / 10:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10


def test_unknown_model_lists_close_matches():
    with pytest.raises(ValueError, match="unknown model 'quadranet36-t'. Did you mean: quadranet36_t"):
        create_model("quadranet36-t")
    with pytest.raises(ValueError, match="Did you mean: .*hornet_t"):
        create_model("hornet_tiny")


def test_bad_constructor_options_name_the_value():
    with pytest.raises(TypeError, match="windw_size"):
        create_model("swin_s28", windw_size=3)
    with pytest.raises(ValueError, match="kernel_size must be a positive odd number.*got 4"):
        create_model("quadranet_s28", kernel_size=4)
