"""The binary XNOR-popcount engine against hand-computed cycles, traffic and energies."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

import pytest

from chipfit.hw.sim.binary import XNOR_ENGINE, BinaryEngine
from chipfit.hw.sim.workload import SimLayer

XNOR_PJ = 2 * 0.03 / 8  # an XNOR and a popcount-tree bit, each 1/8 of Horowitz's 8-bit add (assumption)
ACC_PJ = 0.05
MAC_PJ = 0.23

FIRST = SimLayer("first", "conv", in_h=8, in_w=8, in_c=3, out_h=8, out_w=8, filt_h=3, filt_w=3, num_filters=16,
                 padding=(1, 1))
MIDDLE = SimLayer("middle", "conv", in_h=4, in_w=4, in_c=300, out_h=4, out_w=4, num_filters=100)
LAST = SimLayer("fc", "gemm", m=1, k=100, n=10)


def test_binary_layer_by_hand():
    r = XNOR_ENGINE.run([FIRST, MIDDLE, LAST])
    x = r.layers[1]
    assert x.unit == "xnor"
    # 16 positions x ceil(300 / 256) = 2 chunks x ceil(100 / 64) = 2 folds of the units
    assert x.cycles == 16 * 2 * 2
    macs = 16 * 300 * 100
    assert x.macs == macs
    assert x.utilisation == pytest.approx(macs / (64 * 64 * 256))
    assert x.energy["xnor"] == pytest.approx(macs * XNOR_PJ * 1e-12)
    assert x.energy["accumulate"] == pytest.approx(16 * 2 * 100 * ACC_PJ * 1e-12)  # one per chunk per channel
    # weights 300 x 100 bits = 3750 B from DRAM; activations (4800 + 1600) bits = 800 B stay in the SRAM
    assert x.dram_bytes == 3750
    assert x.energy["dram"] == pytest.approx(3750 * 160e-12)
    assert x.energy["sram"] == pytest.approx((3750 + 800) * 5e-12)
    # 64 cycles at 500 MHz = 128 ns; 3750 B at 6.4 GB/s = 586 ns: bandwidth-bound, transfer and compute overlapped
    assert x.time_s == pytest.approx(3750 / 6.4e9)
    assert x.stall_s == pytest.approx(3750 / 6.4e9 - 64 / 0.5e9)


def test_first_and_last_layers_stay_int8():
    r = XNOR_ENGINE.run([FIRST, MIDDLE, LAST])
    assert [x.unit for x in r.layers] == ["int8", "xnor", "int8"]
    f = r.layers[0]
    macs = 64 * 27 * 16  # 8 x 8 positions x (3 x 3 x 3) x 16 filters
    assert f.cycles == macs // 64  # the 64-MAC int8 unit kept busy
    assert f.energy["mac"] == pytest.approx(macs * MAC_PJ * 1e-12)
    assert f.dram_bytes == 27 * 16  # int8 weights, one byte each
    assert f.detail["act_bits"] == 8
    everything = replace(XNOR_ENGINE, keep_first_last=False).run([FIRST, MIDDLE, LAST])
    assert [x.unit for x in everything.layers] == ["xnor"] * 3


def test_dram_spill_when_sram_is_small():
    small = replace(XNOR_ENGINE, sram_kb=0.5)  # 512 B < the middle layer's 800 B of activations
    x = small.run([FIRST, MIDDLE, LAST]).layers[1]
    assert x.detail["spilled"]
    assert x.dram_bytes == 3750 + 800
    assert x.energy["dram"] == pytest.approx((3750 + 800) * 160e-12)
    assert x.time_s == pytest.approx((3750 + 800) / 6.4e9)


def test_depthwise_groups_run_one_after_another():
    dw = SimLayer("dw", "dwconv", in_h=4, in_w=4, in_c=16, out_h=4, out_w=4, filt_h=3, filt_w=3, num_filters=16,
                  padding=(1, 1), groups=16)
    x = replace(XNOR_ENGINE, keep_first_last=False).run([dw]).layers[0]
    # 16 groups x 16 positions x 1 chunk (9 of 256 bits) x 1 fold (1 of 64 units)
    assert x.cycles == 256
    assert x.utilisation == pytest.approx(16 * 16 * 9 / (256 * 64 * 256))


def test_vector_layer_and_fused_ops():
    pool = SimLayer("p", "pool", vector_ops=640, in_elems=640, out_elems=160)
    fused = replace(MIDDLE, fused_ops=1600, fused=("relu",))
    r = replace(XNOR_ENGINE, keep_first_last=False).run([fused, pool])
    x, p = r.layers
    assert x.detail["vector_cycles"] == 100 and x.cycles == 64 + 100  # 1600 ops on 16 lanes
    assert (p.unit, p.cycles) == ("vector", 40)
    assert p.energy["vector"] == pytest.approx(640 * 0.03e-12)
    assert p.energy["sram"] == pytest.approx(800 * 5e-12)  # 8-bit values in and out


def test_peak_power_and_area():
    # per cycle: 64 units x (256 x 0.0075 + 0.05) + 64 MACs x 0.23 + 16 lanes x 0.03 = 141.28 pJ, at 500 MHz
    # = 70.64 mW; DRAM at 6.4 GB/s x 160 pJ/B = 1024 mW
    assert XNOR_ENGINE.peak_power_w == pytest.approx(0.07064 + 1.024)
    um2 = 64 * (256 * 9 + 36 + 101 / 3) + 64 * 318 + 16 * 36 + 256 * 1024 * 8 * 0.692
    assert XNOR_ENGINE.area_mm2 == pytest.approx(um2 * 1e-6)


def test_every_number_has_a_source():
    numbers = {f.name for f in fields(XNOR_ENGINE)} - {"name", "sources", "keep_first_last"}
    assert numbers <= set(XNOR_ENGINE.sources)
    assert "assumption" in XNOR_ENGINE.sources["xnor_pj_per_bit"]


def test_bad_engines_and_layers():
    with pytest.raises(ValueError, match="units"):
        replace(XNOR_ENGINE, units=0)
    with pytest.raises(ValueError, match="whole number"):
        replace(XNOR_ENGINE, width=2.5)
    with pytest.raises(ValueError, match="negative"):
        XNOR_ENGINE.run([SimLayer("a", "pool", vector_ops=-1)])
    with pytest.raises(ValueError, match="non-empty list"):
        XNOR_ENGINE.run([])
    assert isinstance(XNOR_ENGINE, BinaryEngine)


def test_zoo_network_end_to_end():
    from chipfit.cost import count
    from chipfit.hw.sim.workload import layers_from_profile
    from chipfit.models import create_model

    layers = layers_from_profile(count(create_model("mobilenetv2_s28"), (1, 1, 28, 28)), fused=True)
    r = XNOR_ENGINE.run(layers)
    t = r.total
    assert all(math.isfinite(t[k]) and t[k] > 0 for k in ("latency_s", "energy_j", "inferences_per_s"))
    assert r.period_s == r.latency_s  # one batch at a time
    units = [x.unit for x in r.layers]
    assert units.count("int8") == 2 and units[0] == "int8" and "xnor" in units
    json.dumps(r.to_dict())
    assert "xnor" in r.summary()
