"""The roofline model: closed forms on single ops, and properties on whole networks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch.nn as nn

from chipfit.cost import analyze, capture_torch
from chipfit.hw import load_chip, parse_chip
from chipfit.hw.roofline import apply_chip
from tests.cost.nets import NETS

CHIP = {
    "name": "toy",
    "peak_ops_per_s": {"fp32": {"value": 1e9, "source": "test"}, "int8": {"value": 4e9, "source": "test"}},
    "dram_bandwidth_bytes_per_s": {"value": 1e8, "source": "test"},
    "onchip_bytes": {"value": 1000, "source": "test: tiny, so every activation goes to DRAM"},
    "efficiency": {"value": 0.5, "source": "test"},
    "op_overhead_s": {"value": 1e-6, "source": "test"},
    "energy": {"mac_pj": {"fp32": {"value": 4.0, "source": "t"}}, "add_pj": {"fp32": {"value": 1.0, "source": "t"}},
               "sram_pj_per_byte": {"value": 2.0, "source": "t"}, "dram_pj_per_byte": {"value": 100.0, "source": "t"}},
}


def test_single_conv_closed_form():
    chip = parse_chip(CHIP)
    conv = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    prof = apply_chip(analyze(capture_torch(conv, input_shape=(1, 16, 32, 32))), chip)
    lay = prof.layers[0]
    macs = 16 * 16 * 9 * 32 * 32
    bytes_ = 4 * (16 * 32 * 32 * 2 + 16 * 16 * 9)
    compute = 2 * macs / (1e9 * 0.5)
    memory = bytes_ / 1e8
    assert lay.cost.dram_bytes == bytes_  # input and output are network boundary tensors, weights stream
    assert lay.compute_s == pytest.approx(compute) and lay.memory_s == pytest.approx(memory)
    assert lay.cost.latency_s == pytest.approx(max(compute, memory) + 1e-6)
    assert lay.bound == ("compute" if compute > memory else "memory")
    assert lay.cost.energy_j == pytest.approx((macs * 4.0 + bytes_ * 100.0 + bytes_ * 2.0) * 1e-12)
    assert prof.total.latency_s == pytest.approx(lay.cost.latency_s)


def test_relu_is_memory_bound_and_not_free():
    chip = parse_chip(CHIP)
    prof = apply_chip(analyze(capture_torch(nn.ReLU(), input_shape=(1, 64, 32, 32))), chip)
    lay = prof.layers[0]
    assert lay.bound == "memory" and lay.cost.energy_j > 0 and lay.cost.flops == 64 * 32 * 32


@pytest.mark.parametrize("name", sorted(NETS))
def test_properties_on_networks(name):
    cls, shape = NETS[name]
    base = analyze(capture_torch(cls().eval(), input_shape=shape))
    chip = load_chip("jetson-tx2")
    p = apply_chip(base, chip)
    # fusing never costs more time, bytes or energy
    assert p.total_for(True).latency_s <= p.total_for(False).latency_s
    assert p.total_for(True).energy_j <= p.total_for(False).energy_j
    # more bandwidth is never slower; a higher peak is never slower
    faster_mem = replace(chip, dram_bandwidth_bytes_per_s=chip.dram_bandwidth_bytes_per_s * 4)
    faster_alu = replace(chip, peak_ops_per_s={k: v * 4 for k, v in chip.peak_ops_per_s.items()})
    assert apply_chip(base, faster_mem).total.latency_s <= p.total.latency_s
    assert apply_chip(base, faster_alu).total.latency_s <= p.total.latency_s
    # every layer's latency is at least its compute and memory times
    for lay in p.layers:
        assert lay.cost.latency_s >= max(lay.compute_s, lay.memory_s)


def test_concurrent_chip_uses_the_critical_path():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            return self.a(x) + self.b(x)

    base = analyze(capture_torch(Branches(), input_shape=(1, 8, 16, 16)), fused=False)
    serial = parse_chip(CHIP)
    parallel = replace(serial, concurrent_ops=True)
    ps, pp = apply_chip(base, serial), apply_chip(base, parallel)
    lat = [lay.cost.latency_s for lay in ps.layers]
    assert ps.total.latency_s == pytest.approx(sum(lat))
    assert pp.total.latency_s == pytest.approx(max(lat[0], lat[1]) + lat[2])


def test_lower_precision_moves_fewer_bytes_and_is_not_slower():
    chip = replace(parse_chip(CHIP), onchip_bytes=1)  # nothing fits on chip: DRAM bytes scale with the bit width
    graph = capture_torch(NETS["mobilenetv2"][0]().eval(), input_shape=NETS["mobilenetv2"][1])
    f32 = apply_chip(analyze(graph, "fp32"), chip)
    i8 = apply_chip(analyze(graph, "int8"), chip)
    assert i8.total.dram_bytes == pytest.approx(f32.total.dram_bytes / 4)
    assert i8.total.latency_s < f32.total.latency_s
    assert math.isclose(i8.total.macs, f32.total.macs)


def test_no_dram_chip_keeps_everything_on_chip():
    p = apply_chip(analyze(capture_torch(NETS["resnet"][0]().eval(), input_shape=NETS["resnet"][1]), "int16"),
                   load_chip("dadiannao"))
    assert p.total.dram_bytes == 0 and p.total.latency_s > 0


def test_fused_units_come_after_everything_they_read():
    """Units are in an order a chip can execute: each reads only what earlier units wrote (the quadratic conv's
    chain conv_a * conv_b + conv_c is fused at its last op, after conv_b and conv_c)."""
    import chipfit

    p = chipfit.profile("quadranet_s28", hw="jetson-tx2", dtype="fp16")
    unit_of = {i: k for k, lay in enumerate(p.layers_fused) for i in lay.nodes}
    deps = p.graph.deps()
    for k, lay in enumerate(p.layers_fused):
        for i in lay.nodes:
            assert all(unit_of[d] <= k for d in deps[i] if d in unit_of)
    concurrent = apply_chip(analyze(p.graph, "fp16"), replace(load_chip("jetson-tx2"), concurrent_ops=True))
    assert concurrent.total.latency_s <= p.total.latency_s  # a critical path is never longer than the serial sum
