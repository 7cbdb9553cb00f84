"""Compressed checkpoints: what compress() saves rebuilds the same network from a freshly built float one."""

from __future__ import annotations

import json

import torch
import torch.nn as nn

from chipfit.compress import CompressConfig, PruneConfig, QuantConfig, compress, rebuild_compressed
from chipfit.train import load_checkpoint
from tests.train.test_engine import toy_data


def test_quantized_network_rebuilds_from_its_checkpoint(tmp_path):
    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                             nn.Flatten(), nn.Linear(32, 2))

    data = toy_data()
    cfg = CompressConfig(quant=QuantConfig.from_name("int4", per_channel=True), calib_images=64, batch_size=32)
    res = compress(net(), cfg, data, out=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "compressed.pt")
    assert json.loads(state["norm"]) == {"mean": data.mean, "std": data.std}
    back = rebuild_compressed(net(), state)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(back(x), res.model.eval()(x))


def test_channel_pruned_batchnorm_network_rebuilds_from_its_checkpoint(tmp_path):
    """Channel pruning with BatchNorm in place (statistics re-estimated), then folding and int8: the checkpoint
    rebuilds the same network (plan on the unfolded net, then fold, then quantize)."""
    from chipfit.models import ModelConfig, build_model, create_model

    torch.manual_seed(0)
    net = create_model("mobilenetv2_s28", num_classes=2, in_chans=1)
    cfg = CompressConfig(quant=QuantConfig.from_name("int8", per_channel=True),
                         prune=PruneConfig(0.5, structured=True), finetune_epochs=1, calib_images=64, batch_size=32,
                         max_steps_per_epoch=2)
    res = compress(net, cfg, toy_data(), out=tmp_path, progress=False, model_name="mobilenetv2_s28")
    prune = next(s for s in res.steps if s["step"] == "prune")
    assert prune["batchnorm_recalibrated"] and prune["params_after"] < prune["params_before"] / 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in res.model.modules())
    state = load_checkpoint(tmp_path / "compressed.pt")
    spec = json.loads(state["model_spec"])
    assert spec["name"] == "mobilenetv2_s28"
    back = rebuild_compressed(build_model(ModelConfig.from_dict(spec["config"])), state)  # float net, then transforms
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(back(x), res.model.eval()(x))
