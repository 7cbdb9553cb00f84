"""The crossbar engine against hand-computed mappings, times and energies (ISAAC's per-event figures)."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

import pytest

from chipfit.hw.sim.crossbar import ISAAC_LIKE, PRIME_LIKE, Crossbar, CrossbarCapacityError
from chipfit.hw.sim.workload import SimLayer

# ISAAC's per-event energies, from its component powers
ADC_PJ = 2.0 / 1.28  # 16 mW / 8 ADCs at 1.28 GS/s = 1.5625 pJ a conversion
XBAR_PJ = 0.3 * 100  # 2.4 mW / 8 crossbars for a 100 ns read = 30 pJ
DAC_PJ = 4 / 1024 * 100  # 4 mW / (8 x 128) DACs for 100 ns = 0.390625 pJ
BUF_PJ = 20.7 / 38.4  # 20.7 mW over a 256-bit bus at 1.2 GHz = 0.5390625 pJ/byte


def engine(xbars: int, **kw) -> Crossbar:
    """ISAAC with 8-bit weights and exactly ``xbars`` crossbars (one tile, one IMA)."""
    return replace(ISAAC_LIKE, weight_bits=8, xbars_per_ima=xbars, imas_per_tile=1, tiles=1, **kw)


def pointwise(name: str = "a", hw: int = 4, k: int = 100, n: int = 50) -> SimLayer:
    return SimLayer(name, "conv", in_h=hw, in_w=hw, in_c=k, out_h=hw, out_w=hw, num_filters=n)


def test_pointwise_layer_by_hand():
    # K = 100 rows, N = 50 filters x ceil(8 / 2) = 4 cells = 200 columns -> 1 x ceil(200 / 128) = 2 crossbars
    r = engine(2).run([pointwise()])
    x = r.layers[0]
    assert (x.detail["row_tiles"], x.detail["col_tiles"], x.used, x.replicas) == (1, 2, 2, 1)
    assert x.utilisation == pytest.approx(100 * 200 / (2 * 128 * 128))
    # 16 positions = 16 MVMs of 16 input bits at 1 bit a cycle; the busiest crossbar converts 128 columns at
    # 1.28 GS/s = 100 ns, as long as the read: 16 x 100 ns = 1.6 us an MVM
    assert x.time_s == pytest.approx(16 * 16 * 100e-9)
    assert x.cycles == 16 * 16
    # conversions 16 MVMs x 16 cycles x 200 columns; reads 16 x 16 x 2 crossbars; DAC events 16 x 16 x 100 rows x 2
    assert x.energy["adc"] == pytest.approx(16 * 16 * 200 * ADC_PJ * 1e-12)
    assert x.energy["crossbar"] == pytest.approx(16 * 16 * 2 * XBAR_PJ * 1e-12)
    assert x.energy["dac"] == pytest.approx(16 * 16 * 100 * 2 * DAC_PJ * 1e-12)
    # buffer: 16 MVMs x 100 inputs read + 16 x 50 outputs written, 2 bytes each
    assert x.energy["buffer"] == pytest.approx((16 * 100 + 16 * 50) * 2 * BUF_PJ * 1e-12)
    assert x.energy_j == pytest.approx((80000 + 15360 + 20000 + 2587.5) * 1e-12)
    assert x.dram_bytes == 0 and x.unit == "crossbar"


def test_adc_bound_mvm():
    # an ADC at 0.64 GS/s takes 128 / 0.64 GS/s = 200 ns for a crossbar's columns, twice the read
    x = engine(2, adc_gsps=0.64).run([pointwise()]).layers[0]
    assert x.time_s == pytest.approx(16 * 16 * 200e-9)


def test_depthwise_wastes_cells():
    # 16 groups of K = 9 rows x 1 filter x 4 cells: one crossbar each, 36 of 16384 cells used
    dw = SimLayer("dw", "dwconv", in_h=4, in_w=4, in_c=16, out_h=4, out_w=4, filt_h=3, filt_w=3, num_filters=16,
                  padding=(1, 1), groups=16)
    x = engine(16).run([dw]).layers[0]
    assert x.used == 16
    assert x.utilisation == pytest.approx(9 * 4 / (128 * 128))
    # groups run in parallel on their own crossbars: 16 MVMs, each 16 cycles of the 100 ns read (4 columns convert in
    # 3.1 ns)
    assert x.time_s == pytest.approx(16 * 16 * 100e-9)


def test_capacity_error_names_need_and_fit():
    dw = SimLayer("dw", "dwconv", in_h=4, in_w=4, in_c=16, out_h=4, out_w=4, filt_h=3, filt_w=3, num_filters=16,
                  groups=16)
    small = replace(ISAAC_LIKE, weight_bits=8, xbars_per_ima=2, imas_per_tile=2, tiles=1)  # 4 crossbars a tile
    with pytest.raises(CrossbarCapacityError, match=r"need 16 crossbars.*has 4 .*with_tiles\(4\)") as e:
        small.run([dw])
    assert isinstance(e.value, ValueError)
    assert small.with_tiles(4).run([dw]).extra["crossbars_needed"] == 16


def test_replication_halves_time():
    one, two = engine(2).run([pointwise()]), engine(4).run([pointwise()])
    assert two.layers[0].replicas == 2 and two.layers[0].used == 4
    assert two.layers[0].time_s == pytest.approx(one.layers[0].time_s / 2)
    assert two.energy_j == pytest.approx(one.energy_j)  # the same MVMs, on more crossbars


def test_replication_goes_to_the_slowest_layer():
    # a: 16 MVMs, b: 4 MVMs, 2 crossbars each; 2 spares -> a copy of a (16 -> 8 MVM steps), then none left
    r = engine(6).run([pointwise("a", hw=4), pointwise("b", hw=2)])
    assert [x.replicas for x in r.layers] == [2, 1]
    assert r.latency_s == pytest.approx((8 + 4) * 1.6e-6)
    assert r.period_s == pytest.approx(8 * 1.6e-6)
    assert r.inferences_per_s == pytest.approx(1 / (8 * 1.6e-6))


def test_replicas_capped_at_mvms():
    # 1 MVM (a 1x1 output): more copies cannot help
    x = engine(96).run([pointwise(hw=1)]).layers[0]
    assert x.replicas == 1


def test_quadconv_branches_and_vector_ops():
    # 3 branches of 10 filters x 4 cells = 120 columns, one crossbar; product and sum: 2 x 160 outputs on 64 lanes
    q = SimLayer("q", "quadconv", in_h=4, in_w=4, in_c=10, out_h=4, out_w=4, num_filters=10)
    x = engine(1).run([q]).layers[0]
    assert (x.used, x.detail["columns"], x.detail["vector_cycles"]) == (1, 120, 5)
    assert x.time_s == pytest.approx(16 * 1.6e-6 + 5 / 1.2e9)
    assert x.energy["vector"] == pytest.approx(320 * 0.05e-12)


def test_vector_layer_and_attention_product():
    pool = SimLayer("p", "pool", vector_ops=640, in_elems=640, out_elems=160)
    qk = SimLayer("attn.qk", "gemm", groups=2, m=4, k=8, n=4)
    r = engine(2).run([pointwise(), pool, qk])
    p, a = r.layers[1], r.layers[2]
    assert (p.unit, p.cycles) == ("vector", 10)
    assert p.time_s == pytest.approx(10 / 1.2e9)
    assert p.energy["buffer"] == pytest.approx(800 * 2 * BUF_PJ * 1e-12)
    # 2 x 4 x 8 x 4 = 256 MACs as 512 vector operations: no weights to keep in crossbars
    assert (a.unit, a.cycles) == ("vector", 8)
    assert r.extra["crossbars_needed"] == 2 and any("attention" in n for n in r.notes)


def test_activations_spill_to_dram_when_buffers_are_small():
    # (1600 + 800) elements x 2 bytes = 4800 B > a 1 KB buffer: in and out through DRAM
    x = engine(2, buffer_kb=1).run([pointwise()]).layers[0]
    assert x.dram_bytes == 4800
    assert x.energy["dram"] == pytest.approx(4800 * 160e-12)
    assert x.time_s == pytest.approx(16 * 1.6e-6)  # 4800 B / 25.6 GB/s = 188 ns, hidden under compute


def test_programming_is_reported_apart():
    r = engine(2).run([pointwise()])
    assert r.extra["program_energy_j"] == pytest.approx(100 * 200 * 10e-12)
    assert r.extra["program_s"] == pytest.approx(128 * 1e-6)
    assert "program" not in r.layers[0].energy


def test_isaac_area_and_power_match_the_paper():
    # ISAAC: 168 tiles 62.5 mm2 and 55.4 W, with HyperTransport 85.4 mm2 and 65.8 W
    assert ISAAC_LIKE.area_mm2 == pytest.approx(85.4, rel=2e-3)
    assert ISAAC_LIKE.area_mm2 - ISAAC_LIKE.io_mm2 == pytest.approx(62.5, rel=2e-3)
    assert ISAAC_LIKE.peak_power_w == pytest.approx(65.8, rel=2e-3)
    assert ISAAC_LIKE.peak_power_w - ISAAC_LIKE.io_w == pytest.approx(55.4, rel=2e-3)
    assert ISAAC_LIKE.xbars == 168 * 12 * 8
    assert (ISAAC_LIKE.adc_pj, ISAAC_LIKE.xbar_pj, ISAAC_LIKE.dac_pj) == pytest.approx((ADC_PJ, XBAR_PJ, DAC_PJ))


def test_prime_like_figures():
    assert (PRIME_LIKE.xbar_rows, PRIME_LIKE.bits_per_cell, PRIME_LIKE.dac_bits, PRIME_LIKE.adc_bits) == (256, 4, 3, 6)
    assert PRIME_LIKE.cells_per_weight == 2 and PRIME_LIKE.input_cycles == 2
    # 6-bit inputs in 2 cycles of the 30 ns read (256 columns / (32 x 0.5 GS/s) = 16 ns converts in time)
    assert PRIME_LIKE.mvm_s(512) == pytest.approx(2 * 30e-9)


@pytest.mark.parametrize("eng", [ISAAC_LIKE, PRIME_LIKE])
def test_every_number_has_a_source(eng):
    numbers = {f.name for f in fields(eng)} - {"name", "sources"}
    assert numbers <= set(eng.sources)
    assert all(("recalled" in s or "assumption" in s or "Horowitz" in s or "derived" in s)
               for s in eng.sources.values())


def test_bad_engines():
    with pytest.raises(ValueError, match="with_tiles"):
        ISAAC_LIKE.with_tiles(0)
    with pytest.raises(ValueError, match="tiles"):
        ISAAC_LIKE.with_tiles(-3)
    with pytest.raises(ValueError, match="whole number"):
        replace(ISAAC_LIKE, xbar_rows=128.5)
    with pytest.raises(ValueError, match="static_w"):
        replace(ISAAC_LIKE, static_w=-1.0)
    with pytest.raises(ValueError, match="negative"):
        ISAAC_LIKE.run([SimLayer("a", "conv", in_c=-4)])
    with pytest.raises(ValueError, match="batch"):
        ISAAC_LIKE.run([pointwise()], batch=0)


def test_static_power_adds_energy():
    x = engine(2, static_w=1.0).run([pointwise()]).layers[0]
    assert x.energy["static"] == pytest.approx(x.time_s)


@pytest.mark.parametrize("eng", [ISAAC_LIKE, PRIME_LIKE])
def test_zoo_network_end_to_end(eng, mobilenet_layers):
    r = eng.run(mobilenet_layers)
    t = r.total
    assert all(math.isfinite(t[k]) and t[k] > 0 for k in ("latency_s", "period_s", "energy_j", "inferences_per_s"))
    assert r.period_s <= r.latency_s
    assert r.extra["crossbars_needed"] <= r.extra["crossbars_used"] <= r.extra["crossbars_available"]
    assert {x.unit for x in r.layers} == {"crossbar", "vector"}
    json.dumps(r.to_dict())
    assert eng.name in r.summary()
    # batch 2: twice the MVMs and energy (replication can differ, so latency is not exactly twice)
    assert eng.run(mobilenet_layers, batch=2).energy_j == pytest.approx(2 * r.energy_j, rel=1e-6)


@pytest.fixture(scope="module")
def mobilenet_layers():
    from chipfit.cost import count
    from chipfit.hw.sim.workload import layers_from_profile
    from chipfit.models import create_model

    return layers_from_profile(count(create_model("mobilenetv2_s28"), (1, 1, 28, 28)), fused=True)
