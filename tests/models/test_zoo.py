"""Every registered model builds, runs forward and backward, and round-trips through its config; sizes match the
published figures (counted with chipfit's own profile); impossible configurations fail at construction."""

from __future__ import annotations

import json

import pytest
import torch

import chipfit
from chipfit.models import BlockConfig, ModelConfig, StageConfig, build_model, create_model, get_entry, list_models


def _small_input(name: str) -> tuple[int, ...]:
    shape = get_entry(name).input_shape
    return (2, shape[1], 64, 64) if shape[-1] == 224 else (2, *shape[1:])


@pytest.mark.parametrize("name", list_models())
def test_builds_runs_and_round_trips(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    x = torch.randn(_small_input(name))
    out = model(x)
    assert out.shape == (x.shape[0], 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    cfg = ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict())))
    assert cfg == model.config
    twin = build_model(cfg)
    twin.load_state_dict(model.state_dict())
    model.eval()
    twin.eval()
    torch.testing.assert_close(twin(x), model(x))


# published (HorNet, ConvNeXt, MobileNetV2, ShuffleNetV2 papers) or implied by QuadraNet's structure (quadranet.md):
# params (M), MACs (G) at 224x224, 1000 classes
SIZES = {
    "hornet_t": (22, 4.0), "hornet_s": (50, 8.8), "hornet_b": (87, 15.6), "convnext_t": (28.6, 4.5),
    "quadranet36_xxs": (1.85, 0.32), "quadranet36_xs": (6.39, 1.12), "quadranet36_t": (23.6, 4.13),
    "quadranet36_s": (51.6, 9.03), "quadranet36_b": (90.5, 15.8), "quadranet25_t": (16.3, 2.90),
    "quadranet25_s": (35.5, 6.34), "quadranet25_b": (62.1, 11.1), "mobilenetv2_100": (3.5, 0.300),
    "shufflenetv2_x1_0": (2.28, 0.146), "shufflenetv2_x0_5": (1.37, 0.041),
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_sizes_match_published_within_2_percent(name):
    params_m, macs_g = SIZES[name]
    prof = chipfit.profile(name)  # meta capture: no arithmetic
    assert prof.total.params / 1e6 == pytest.approx(params_m, rel=0.02)
    assert prof.total.macs / 1e9 == pytest.approx(macs_g, rel=0.02)
    assert not prof.unsupported


def test_tiny_quadranet_overfits_one_batch():
    torch.manual_seed(0)
    model = create_model("quadranet_s28", num_classes=10)
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0)
    first = None
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10


def test_unknown_model_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean: quadranet36_t"):
        create_model("quadranet36-t")


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: BlockConfig("quadratic"), "unknown block kind 'quadratic'"),
        (lambda: StageConfig(-1, 8), "depth must be >= 0"),
        (lambda: build_model(ModelConfig("metaformer", (StageConfig(1, 24, BlockConfig("hor", order=5)),))),
         "gnConv order 5 too high for width 24"),
        (lambda: build_model(ModelConfig("metaformer", (StageConfig(1, 32), StageConfig(1, 64, BlockConfig(
            "swin", window_size=7))), input_size=32)), "window larger than the map"),
        (lambda: build_model(ModelConfig("metaformer", tuple(StageConfig(1, 8) for _ in range(5)), input_size=32)),
         "too small for another stride-2"),
        (lambda: ModelConfig.from_dict({"family": "metaformer", "stages": [], "depthz": 3}), "unknown keys"),
    ],
)
def test_impossible_configs_fail_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()
