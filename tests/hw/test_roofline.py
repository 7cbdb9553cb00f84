"""The roofline model: closed forms on single ops, and properties on whole networks (an Estimate per mode)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch.nn as nn

from chipfit.cost import analyze, capture_torch
from chipfit.hw import load_chip, parse_chip
from chipfit.hw.roofline import estimate
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
    est = estimate(analyze(capture_torch(conv, input_shape=(1, 16, 32, 32))), chip)
    lay = est.layers[0]
    macs = 16 * 16 * 9 * 32 * 32
    bytes_ = 4 * (16 * 32 * 32 * 2 + 16 * 16 * 9)
    compute = 2 * macs / (1e9 * 0.5)
    memory = bytes_ / 1e8
    assert lay.dram_bytes == bytes_  # input and output are network boundary tensors, weights stream
    assert lay.compute_s == pytest.approx(compute) and lay.memory_s == pytest.approx(memory)
    assert lay.latency_s == pytest.approx(max(compute, memory) + 1e-6)
    assert lay.bound == ("compute" if compute > memory else "memory")
    assert lay.energy_j == pytest.approx((macs * 4.0 + bytes_ * 100.0 + bytes_ * 2.0) * 1e-12)
    assert est.latency_s == pytest.approx(lay.latency_s) and est.source == "roofline" and est.target == "toy"


def test_a_layer_whose_overhead_exceeds_compute_and_memory_is_overhead_bound():
    chip = replace(parse_chip(CHIP), op_overhead_s=1.0)
    lay = estimate(analyze(capture_torch(nn.ReLU(), input_shape=(1, 4, 4, 4))), chip).layers[0]
    assert lay.bound == "overhead" and lay.latency_s == pytest.approx(1.0 + lay.memory_s)


def test_estimating_leaves_the_profile_alone():
    """The counts are not changed by a chip: no latency in them, and the profile's notes are its own."""
    prof = analyze(capture_torch(NETS["resnet"][0]().eval(), input_shape=NETS["resnet"][1]), "int16")
    before = (prof.total, list(prof.notes))
    tiny = replace(load_chip("dadiannao"), onchip_bytes=1.0)  # no DRAM and no room: the estimate says so in a note
    est = estimate(prof, tiny)
    assert est.notes and "exceed its on-chip memory" in est.notes[0]
    assert (prof.total, prof.notes) == before and not prof.estimates
    assert not hasattr(prof.total, "latency_s")


def test_relu_is_memory_bound_and_not_free():
    chip = parse_chip(CHIP)
    prof = analyze(capture_torch(nn.ReLU(), input_shape=(1, 64, 32, 32)))
    lay = estimate(prof, chip).layers[0]
    assert lay.bound == "memory" and lay.energy_j > 0 and prof.layers[0].cost.flops == 64 * 32 * 32


@pytest.mark.parametrize("name", sorted(NETS))
def test_properties_on_networks(name):
    cls, shape = NETS[name]
    base = analyze(capture_torch(cls().eval(), input_shape=shape))
    chip = load_chip("jetson-tx2")
    p = estimate(base, chip)
    # fusing never costs more time, bytes or energy
    fused, unfused = estimate(base, chip, fused=True), estimate(base, chip, fused=False)
    assert fused.latency_s <= unfused.latency_s and fused.energy_j <= unfused.energy_j
    assert len(fused.layers) == len(base.layers_fused) and len(unfused.layers) == len(base.layers_unfused)
    # more bandwidth is never slower; a higher peak is never slower
    faster_mem = replace(chip, dram_bandwidth_bytes_per_s=chip.dram_bandwidth_bytes_per_s * 4)
    faster_alu = replace(chip, peak_ops_per_s={k: v * 4 for k, v in chip.peak_ops_per_s.items()})
    assert estimate(base, faster_mem).latency_s <= p.latency_s
    assert estimate(base, faster_alu).latency_s <= p.latency_s
    # every layer's latency is at least its compute and memory times
    for lay in p.layers:
        assert lay.latency_s >= max(lay.compute_s, lay.memory_s)


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
    ps, pp = estimate(base, serial), estimate(base, parallel)
    lat = [lay.latency_s for lay in ps.layers]
    assert ps.latency_s == pytest.approx(sum(lat))
    assert pp.latency_s == pytest.approx(max(lat[0], lat[1]) + lat[2])


def test_lower_precision_moves_fewer_bytes_and_is_not_slower():
    chip = replace(parse_chip(CHIP), onchip_bytes=1)  # nothing fits on chip: DRAM bytes scale with the bit width
    graph = capture_torch(NETS["mobilenetv2"][0]().eval(), input_shape=NETS["mobilenetv2"][1])
    f32, i8 = analyze(graph, "fp32"), analyze(graph, "int8")
    e32, e8 = estimate(f32, chip), estimate(i8, chip)
    assert e8.dram_bytes == pytest.approx(e32.dram_bytes / 4)
    assert e8.latency_s < e32.latency_s
    assert math.isclose(i8.total.macs, f32.total.macs)


def test_no_dram_chip_keeps_everything_on_chip():
    e = estimate(analyze(capture_torch(NETS["resnet"][0]().eval(), input_shape=NETS["resnet"][1]), "int16"),
                 load_chip("dadiannao"))
    assert e.dram_bytes == 0 and e.latency_s > 0


def test_fused_units_come_after_everything_they_read():
    """Units are in an order a chip can execute: each reads only what earlier units wrote (the quadratic conv's
    chain conv_a * conv_b + conv_c is fused at its last op, after conv_b and conv_c)."""
    import chipfit

    p = chipfit.profile("quadranet_s28", hw="jetson-tx2", precision="fp16")
    unit_of = {i: k for k, lay in enumerate(p.layers_fused) for i in lay.nodes}
    deps = p.graph.deps()
    for k, lay in enumerate(p.layers_fused):
        for i in lay.nodes:
            assert all(unit_of[d] <= k for d in deps[i] if d in unit_of)
    concurrent = estimate(analyze(p.graph, "fp16"), replace(load_chip("jetson-tx2"), concurrent_ops=True))
    assert concurrent.latency_s <= p.estimate.latency_s  # a critical path is never longer than the serial sum
