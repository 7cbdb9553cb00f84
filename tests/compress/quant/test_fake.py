"""Tensor-level quantization against closed forms."""

from __future__ import annotations

import pytest
import torch

from chipfit.compress.quant import fake


def test_weight_scale_closed_form_and_per_channel():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    assert fake.weight_scale(w, 8, False).item() == pytest.approx(2.0 / 127)
    per = fake.weight_scale(w, 8, True)
    torch.testing.assert_close(per, torch.tensor([2.0 / 127, 0.5 / 127]))
    for c in range(2):  # per-channel = per-tensor computed on each channel alone
        assert per[c] == fake.weight_scale(w[c:c + 1], 8, False)[0]
    assert fake.weight_scale(w, 4, False).item() == pytest.approx(2.0 / 7)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_round_trip_error_is_at_most_half_a_step(bits):
    w = torch.randn(16, 8, 3, 3)
    wq, s = fake.quantize_weight(w, bits, per_channel=True)
    assert ((wq - w).abs() <= s.view(-1, 1, 1, 1) / 2 + 1e-7).all()
    levels = (wq / s.view(-1, 1, 1, 1)).round()
    assert levels.abs().max() <= 2 ** (bits - 1) - 1
    assert len(torch.unique(levels)) <= 2**bits - 1


def test_asymmetric_weight_grid_closed_form():
    """[0, 3] on 8 bits: scale 3/255, zero point -128 (so 0 is the lowest level), every level used."""
    w = torch.linspace(0, 3, 256).reshape(1, 256)
    scale, zp, qmin, qmax = fake.weight_qparams(w, 8, per_channel=False, symmetric=False)
    assert scale.item() == pytest.approx(3 / 255) and int(zp) == -128 and (qmin, qmax) == (-128, 127)
    wq, _ = fake.quantize_weight(w, 8, per_channel=False, symmetric=False)
    torch.testing.assert_close(wq, w, atol=1e-6, rtol=0)  # the grid is the tensor itself
    per = fake.weight_qparams(torch.tensor([[-1.0, 3.0], [-2.0, -0.5]]), 4, per_channel=True, symmetric=False)
    torch.testing.assert_close(per[0], torch.tensor([4 / 15, 2 / 15]))  # [min(w, 0), max(w, 0)] per channel
    assert per[1].tolist() == [round(-8 + 1 / (4 / 15)), 7]  # zero point: where 0 falls on the signed grid


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_asymmetric_error_and_one_sided_tensors(bits):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, 3, 3, generator=g)
    wq, s = fake.quantize_weight(w, bits, per_channel=True, symmetric=False)
    assert ((wq - w).abs() <= s.view(-1, 1, 1, 1) / 2 + 1e-6).all()
    levels = (wq / s.view(-1, 1, 1, 1)).round()
    assert all(len(torch.unique(levels[c])) <= 2**bits for c in range(16))  # per channel: its own zero point
    relu_like = w.abs()  # one-sided: a symmetric grid wastes its negative half
    err = {sym: (fake.quantize_weight(relu_like, bits, True, symmetric=sym)[0] - relu_like).pow(2).mean()
           for sym in (True, False)}
    assert err[False] < err[True] / 2
    with pytest.raises(ValueError, match="binary weights are symmetric"):
        fake.quantize_weight(w, 1, True, symmetric=False)


def test_binary_is_sign_times_mean_abs():
    w = torch.tensor([[0.5, -1.5, 2.0], [-0.1, -0.2, 0.3]])
    wq, s = fake.quantize_weight(w, 1, per_channel=True)
    torch.testing.assert_close(s, torch.tensor([4.0 / 3, 0.2]))
    torch.testing.assert_close(wq, torch.sign(w) * s.view(-1, 1))


def test_straight_through_gradient():
    x = torch.tensor([-1.0, 0.1, 0.5, 3.0], requires_grad=True)
    s, z = fake.act_qparams(0.0, 1.0, 8)
    torch.fake_quantize_per_tensor_affine(x, s, z, 0, 255).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))  # zero outside [0, 1]
    w = torch.randn(4, 3, requires_grad=True)
    fake.quantize_weight(w, 1, True)[0].sum().backward()
    torch.testing.assert_close(w.grad, torch.ones(4, 3))


def test_fake_quant_is_onnx_quantize_linear_arithmetic():
    """round(x / scale) half to even, as ONNX QuantizeLinear (float32 division, not multiplication by 1 / scale),
    then (k - z) * scale; gradient 1 inside the grid, 0 where clamped."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    scale, z = torch.tensor(0.0123), torch.tensor(17, dtype=torch.int32)
    x = torch.cat([torch.randn(100_000, generator=g), (torch.arange(-20, 20) + 0.5) * scale])  # half steps too
    got = fake.fake_quant(x, scale, z, 0, 255)
    xn, sn = x.numpy(), np.float32(scale.item())
    ref = (np.clip(np.round(xn / sn) + 17, 0, 255) - 17).astype(np.float32) * sn
    np.testing.assert_array_equal(got.numpy(), ref)
    x = torch.tensor([-1.2, 0.1, 1.5, 9.0], requires_grad=True)
    fake.fake_quant(x, torch.tensor(0.01), torch.tensor(100, dtype=torch.int32), 0, 255).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]  # -1.2 and 9 fall outside [-1.00, 1.55]


def test_act_qparams_make_zero_exact():
    s, z = fake.act_qparams(-1.0, 3.0, 8)
    assert s == pytest.approx(4 / 255) and z == round(1 / s)
    q = torch.fake_quantize_per_tensor_affine(torch.tensor([0.0]), s, z, 0, 255)
    assert q.item() == 0.0


def test_calibration_methods_on_a_planted_outlier():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(200_000, generator=g).abs(), torch.tensor([50.0])])
    lo, hi = float(x.min()), float(x.max())
    assert fake.choose_range(x, lo, hi, "minmax", 8) == (lo, hi)
    _, p_hi = fake.choose_range(x, lo, hi, "percentile", 8, 99.9)
    assert 3.0 < p_hi < 4.0  # the 99.9th percentile of |N(0,1)| is 3.29: the outlier is clipped
    m_lo, m_hi = fake.choose_range(x, lo, hi, "mse", 8)

    def mse(a, b):
        s, z = fake.act_qparams(a, b, 8)
        return float((torch.fake_quantize_per_tensor_affine(x, s, z, 0, 255) - x).pow(2).mean())

    assert m_hi < hi and mse(m_lo, m_hi) < mse(lo, hi)
    _, e_hi = fake.choose_range(x, lo, hi, "entropy", 8)
    assert e_hi < hi / 2
