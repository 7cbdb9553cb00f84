"""chipfit.hw.area: hand-computed part areas and powers, node scaling, and the two published dies it is checked
against (the TPU v1's matrix unit, which the PE overhead is fitted to, and Eyeriss v1, which it is not)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from chipfit.hw.area import TECH_45NM, area, area_factor, energy_factor, pe_um2, power, static_energy_j
from chipfit.hw.sim import load_arch


@pytest.fixture
def npu():
    return load_arch("edge-npu")


def test_interpolations_pass_through_horowitz_points():
    assert TECH_45NM.mult(8) == 282 and TECH_45NM.mult(32) == 3495
    # power law through (8, 282) and (32, 3495): 16 bits is their geometric mean
    assert TECH_45NM.mult(16) == pytest.approx(math.sqrt(282 * 3495))
    assert TECH_45NM.add(20) == pytest.approx(36 + 101 * 12 / 24)


def test_pe_area_by_hand():
    # int8 PE: (282 + add(24) = 36 + 101 * 16/24) x 8
    assert pe_um2(8) == pytest.approx((282 + 36 + 101 * 16 / 24) * 8)
    assert pe_um2(8, ("nm",)) == pytest.approx(pe_um2(8) * 1.10)
    with pytest.raises(ValueError, match="word_bits"):
        pe_um2(0)


def test_edge_npu_area_by_hand(npu):
    a = area(npu)
    assert a.pe_mm2 == pytest.approx(32 * 32 * pe_um2(8, ("nm",)) * 1e-6)
    assert a.sram_mm2 == pytest.approx(512 * 1024 * 8 * 0.346 / 0.5 * 1e-6)
    assert a.dram_mm2 == pytest.approx(8 * 0.15)
    assert a.link_mm2 == 0  # one chip: no links
    rest = a.pe_mm2 + a.sram_mm2 + a.vector_mm2 + a.dram_mm2
    assert a.top_mm2 == pytest.approx(0.1 * rest)
    assert a.total_mm2 == pytest.approx(1.1 * rest)
    two = area(npu, chips=2)
    assert two.link_mm2 == pytest.approx(4 * 6.4 * 1.8) and two.all_chips_mm2 == pytest.approx(2 * two.total_mm2)


def test_node_scaling(npu):
    assert area_factor(90) == pytest.approx(4.0) and energy_factor(90) == pytest.approx(2.0)
    assert area(npu, node_nm=22.5).total_mm2 == pytest.approx(area(npu).total_mm2 / 4)
    with pytest.raises(ValueError, match="node_nm"):
        area_factor(0)


def test_bigger_arrays_cost_area_and_power(npu):
    big = dataclasses.replace(npu, rows=64, cols=64)
    assert area(big).pe_mm2 == pytest.approx(4 * area(npu).pe_mm2)
    assert power(big).mac_w == pytest.approx(4 * power(npu).mac_w)


def test_power_by_hand(npu):
    p = power(npu)
    assert p.mac_w == pytest.approx(1024 * 0.23e-12 * 800e6)
    assert p.sram_w == pytest.approx(64 * 1 * 12.5e-12 * 800e6)
    assert p.dram_w == pytest.approx(8e9 * 160e-12)
    assert p.leakage_w == pytest.approx(area(npu).total_mm2 * 0.01)
    assert static_energy_j(npu, 1e-3) == pytest.approx(p.leakage_w * 1e-3)


def test_tpu_matrix_unit_matches_its_die_share():
    """Fitted: 256x256 int8 PEs at 28 nm come to the matrix unit's 24% of a 331 mm2 die (Jouppi et al., 2017)."""
    a = area(load_arch("tpu-v1"), node_nm=28)
    assert a.pe_mm2 == pytest.approx(0.24 * 331, rel=0.05)


def test_eyeriss_within_a_factor_of_two_of_its_core():
    """Not fitted: Eyeriss v1's 12.25 mm2 core at 65 nm (Chen et al., JSSC 2017). The lean systolic-PE model gives
    about 0.63 of it (its row-stationary PEs carry control and scratchpad logic)."""
    total = area(load_arch("eyeriss-v1"), node_nm=65).total_mm2
    assert 0.5 * 12.25 < total < 1.5 * 12.25


def test_every_figure_is_cited():
    for name in ("mult_um2", "add_um2", "pe_overhead", "sparsity_overhead", "sram_um2_per_bit", "dram_mm2_per_gbps",
                 "link_mm2_per_gbps", "top_overhead", "leakage_w_per_mm2", "node_scaling"):
        assert TECH_45NM.sources[name].strip()
