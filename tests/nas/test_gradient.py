"""The gradient strategy: the two-path forward has the active path's value, the latency terms are the closed forms,
and a tight budget moves the probabilities off the slow ops."""

from __future__ import annotations

import math
import random

import pytest
import torch

from chipfit.nas.gradient import GradientConfig, _two_path_forward, gradient_search, latency_term
from chipfit.nas.latency import LatencyTable, Target
from chipfit.nas.space import Arch, load_space
from chipfit.nas.supernet import Supernet


def test_latency_terms_are_the_closed_forms():
    e = torch.tensor(300e-6, requires_grad=True)
    mul = latency_term(e, 400e-6, GradientConfig(loss="mul", beta=0.6))
    assert float(mul.detach()) == pytest.approx((math.log(300) / math.log(400)) ** 0.6, rel=1e-6)
    add = latency_term(e, 400e-6, GradientConfig(loss="add", lam=2.0))
    assert float(add.detach()) == pytest.approx(2.0 * (300 - 400) / 400, rel=1e-6)
    add.backward()
    assert float(e.grad) == pytest.approx(2.0 / 400e-6, rel=1e-6)
    with pytest.raises(ValueError, match="above 1 us"):
        latency_term(e, 0.5e-6, GradientConfig(loss="mul"))
    with pytest.raises(ValueError, match="--grad-loss"):
        GradientConfig(loss="max")


def test_two_path_forward_has_the_active_paths_value(one_thread):
    space = load_space("quadranet_s28")  # LayerNorm only: the value does not depend on the batch
    torch.manual_seed(0)
    net = Supernet(space).train()
    widths = space.sample(random.Random(0))
    probs = [[torch.softmax(torch.randn(len(st.slot_ops(j))), 0).requires_grad_() for j in range(st.slots)]
             for st in space.stages]
    x = torch.randn(3, 1, 28, 28)
    logits, active = _two_path_forward(net, x, widths, probs, torch.Generator().manual_seed(1))
    ref = net.set_arch(Arch(widths.widths, tuple(tuple(a) for a in active), widths.resolution))(x)
    torch.testing.assert_close(logits, ref)
    logits.sum().backward()
    # the gradient reaches the probabilities of the slots (two sampled ops each)
    assert sum(int((p.grad is not None) and bool(p.grad.abs().sum() > 0)) for s in probs for p in s) >= 6


def test_tight_budget_moves_probability_off_slow_ops(tiny_data, one_thread):
    space = load_space("quadranet_s28")
    torch.manual_seed(0)
    net = Supernet(space)
    target = Target("edge-npu", "roofline")
    widths = space.largest()
    table = LatencyTable.build(space, target, widths)
    res = gradient_search(net, tiny_data, widths, [("npu", 50e-6, table)],
                          GradientConfig(steps=25, batch_size=8, loss="add", lam=20.0, alpha_lr=0.05, weight_lr=0.0))
    lat = table.slot_latencies(widths)
    # per slot, the probability-weighted latency fell below the uniform average in most slots
    fell = 0
    slots = 0
    for i, st in enumerate(space.stages):
        for j in range(st.slots):
            p = torch.tensor(res.probs[i][j])
            l_ = torch.tensor(lat[i][j])
            slots += 1
            fell += int(float((p * l_).sum()) < float(l_.mean()))
    assert fell >= slots - 1
    assert table.latency(res.arch) < table.latency(widths)
    hist = [h["npu E[latency_s]"] for h in res.history]
    assert hist[-1] < hist[0]
