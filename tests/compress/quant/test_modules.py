"""Fake-quant networks: the right layers are swapped, 8 bits stay close to float, checkpoints round-trip, QAT
trains. (Their QDQ export is tested in tests/deploy/test_qdq.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from chipfit.compress import QuantConfig
from chipfit.compress.quant import calibrate, quant_bits, quantize
from chipfit.compress.quant.modules import ActQuant, QConv2d, QLinear, QQuadratic
from chipfit.layers import QuadraConv2d
from chipfit.models import create_model


def small_net() -> nn.Module:
    """Every kind of wrapped layer: conv, depthwise quadratic conv, strided conv, linear (input 1x1x8x8)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), QuadraConv2d(8, 8, 3, padding=1, groups=8),
                         nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 4))


def calibrated_net(cfg: QuantConfig, model: nn.Module | None = None, shape=(1, 1, 8, 8)) -> nn.Module:
    """``model`` (default :func:`small_net`) fake-quantized by ``cfg`` and calibrated on random inputs."""
    model = model if model is not None else small_net()
    torch.manual_seed(1)
    quantize(model.eval(), cfg)
    return calibrate(model, [torch.randn(16, *shape[1:]) for _ in range(4)])


def test_swaps_every_weighted_layer_of_a_zoo_network():
    net = create_model("quadranet_s28", num_classes=10, in_chans=1)
    n_conv = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    n_quad = sum(isinstance(m, QuadraConv2d) for m in net.modules())
    quantize(net, QuantConfig())
    assert sum(isinstance(m, QConv2d) for m in net.modules()) == n_conv
    assert sum(isinstance(m, QQuadratic) for m in net.modules()) == n_quad > 0
    assert sum(isinstance(m, QLinear) for m in net.modules()) == 1
    assert set(quant_bits(net).values()) == {(8, 8)}
    with pytest.raises(ValueError, match="nothing to quantize"):
        quantize(nn.Sequential(nn.ReLU()), QuantConfig())


@pytest.mark.parametrize(("keep", "eight"), [("none", []), ("edges", ["0", "8"]), ("edges+depthwise", ["0", "2", "8"])])
def test_keep_8bit_picks_first_last_and_depthwise(keep, eight):
    m = quantize(small_net(), QuantConfig.from_name("binary", per_channel=True, keep_8bit=keep))
    bits = {name: w for name, (w, _) in quant_bits(m).items()}
    assert bits == {n: 8 if n in eight else 1 for n in ("0", "2", "4", "8")}
    from chipfit.compress.measure import size_bytes

    phys = small_net()  # the same names as the wrappers: stored size follows each layer's width
    w = {n: sum(p.numel() for p in phys.get_submodule(n).parameters() if p.ndim >= 2) for n in bits}
    other = sum(p.numel() for p in phys.parameters() if p.ndim < 2) * 4
    assert size_bytes(phys, QuantConfig.from_name("binary"), {n: 8 for n in eight}) == sum(
        w[n] * (8 if n in eight else 1) / 8 for n in w) + other
    with pytest.raises(ValueError, match="keep_8bit"):
        QuantConfig(keep_8bit="first")


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_close_to_float_and_lower_bits_further(per_channel):
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        ref = small_net().eval()(x)
        errs = [float((calibrated_net(QuantConfig.from_name(n, per_channel=per_channel))(x) - ref).abs().mean())
                for n in ("int8", "int4", "binary")]
    assert errs[0] < 0.02 * float(ref.abs().mean()) + 1e-3
    assert errs[0] < errs[1] < errs[2]


def test_quadratic_modes_add_quantizers():
    counts = {}
    for mode in ("input", "branches", "product"):
        m = calibrated_net(QuantConfig(quadratic=mode))
        counts[mode] = sum(isinstance(q, ActQuant) for q in m.modules())
    assert counts["branches"] == counts["input"] + 2 and counts["product"] == counts["input"] + 3


def test_state_dict_round_trip_and_qat_step():
    cfg = QuantConfig(per_channel=True)
    a = calibrated_net(cfg)
    b = quantize(small_net(), cfg)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
    a.train()
    opt = torch.optim.SGD(a.parameters(), lr=0.1)
    before = a[0].layer.weight.detach().clone()
    loss = a(x).logsumexp(1).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in a.parameters() if p.grad is not None)
    opt.step()
    assert not torch.equal(before, a[0].layer.weight)
