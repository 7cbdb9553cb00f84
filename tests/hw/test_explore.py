"""chipfit.hw.explore: scoring one design, the front, placement, strategies and resuming from the log."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from chipfit.hw.area import area, energy_factor, static_energy_j
from chipfit.hw.explore import Budgets, Design, dominates, evaluate, explore, pareto, parse_area, parse_power, placement
from chipfit.hw.sim import SimLayer, load_arch, simulate
from chipfit.hw.space import HwSpace


def _layers():
    return [SimLayer("c1", "conv", in_h=8, in_w=8, in_c=8, out_h=8, out_w=8, filt_h=3, filt_w=3, num_filters=16,
                     padding=(1, 1)),
            SimLayer("fc", "gemm", m=1, k=1024, n=10)]


SMALL = HwSpace(name="small", rows=(4, 8, 16), cols=(4, 8, 16), dataflow=("ws", "os"), sram_kb=(8, 64),
                split=((50, 25, 25),), dram_gbps=(2, 8), sparsity=("dense",))


def _d(key, lat, en, ar):
    return Design(key, key, None, lat, lat, en, en, 0.0, ar, 1.0, en / lat)


def test_evaluate_adds_leakage_to_the_simulators_energy():
    arch = load_arch("edge-npu")
    d = evaluate(_layers(), arch, node_nm=45)
    res = simulate(_layers(), arch, precision="int8")
    assert d.latency_s == pytest.approx(res.total["time_s"])
    assert d.dynamic_j == pytest.approx(res.total["energy_j"])  # 45 nm: no scaling
    assert d.static_j == pytest.approx(static_energy_j(arch, d.latency_s))
    assert d.energy_j == pytest.approx(d.dynamic_j + d.static_j)
    assert d.area_mm2 == pytest.approx(area(arch).total_mm2)
    # at 90 nm the non-DRAM energy doubles, the DRAM's stays
    d90 = evaluate(_layers(), arch, node_nm=90)
    tot = res.total
    dram = (tot["dram_read_bytes"] + tot["dram_write_bytes"]) * arch.energy.dram_pj_per_byte * 1e-12
    assert d90.dynamic_j == pytest.approx((tot["energy_j"] - dram) * energy_factor(90) + dram)


def test_budgets_are_violations_and_a_layer_that_fits_no_buffer_is_infeasible():
    arch = load_arch("edge-npu")
    d = evaluate(_layers(), arch, budgets=Budgets(area_mm2=1.0, latency_s=1.0))
    assert d.violations["area_mm2"] == pytest.approx(d.area_mm2 / 1.0 - 1) and d.violations["latency_s"] < 0
    assert not d.feasible
    no_room = dataclasses.replace(arch, filter_sram_bytes=4, rows=32, cols=32)
    bad = evaluate(_layers(), no_room)
    assert bad.error and "fits no buffer" in bad.error and not bad.feasible and math.isinf(bad.latency_s)


def test_pareto_and_dominance_by_hand():
    a, b, c, d = _d("a", 1, 1, 1), _d("b", 2, 2, 2), _d("c", 0.5, 3, 1), _d("d", 1, 1, 1)
    assert dominates(a, b) and not dominates(a, c) and not dominates(a, d)
    assert [x.key for x in pareto([b, a, c, d])] == ["c", "a"]  # d repeats a, b is dominated


def test_placement_epsilon_by_hand():
    pool = [_d("p", 1, 2, 4), _d("q", 4, 1, 1)]
    # against d = (2, 4, 8): p gives max(1/2, 2/4, 4/8) = 0.5: inside, 2x better everywhere
    pl = placement(_d("x", 2, 4, 8), pool)
    assert pl["epsilon"] == pytest.approx(0.5) and pl["inside_front"] and pl["dominated_by"] == 1
    assert pl["latency_ratio_at_area"] == pytest.approx(0.5)
    # against (1, 1, 1): q needs 4x in latency, p 4x in area: outside by 4x
    out = placement(_d("y", 1, 1, 1), pool)
    assert out["epsilon"] == pytest.approx(4.0) and not out["inside_front"]


def test_grid_scores_every_point_and_the_front_is_not_dominated():
    ex = explore(_layers(), SMALL, trials=1000)
    assert ex.strategy == "grid" and len(ex.designs) == SMALL.size() == ex.evaluated
    front = ex.front()
    assert front
    for f in front:
        assert not any(dominates(o, f) for o in ex.designs if o.feasible)
    with pytest.raises(ValueError, match="more than --trials"):
        explore(_layers(), SMALL, trials=5, strategy="grid")


def test_refine_reaches_the_grid_front_more_often_than_random():
    grid = {d.key for d in explore(_layers(), SMALL, trials=1000).front()}
    hits = {}
    for strategy in ("random", "refine"):
        found = 0
        for seed in range(4):
            ex = explore(_layers(), SMALL, trials=30, strategy=strategy, seed=seed)
            assert len(ex.designs) == 30
            found += len({d.key for d in ex.front()} & grid)
        hits[strategy] = found
    assert hits["refine"] > hits["random"]


def test_an_interrupted_run_continues_from_its_log(tmp_path):
    log = tmp_path / "d.jsonl"
    first = explore(_layers(), SMALL, trials=10, strategy="random", log=log)
    lines = log.read_text().splitlines()
    assert len(lines) == 10
    log.write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])  # killed while writing the 7th
    again = explore(_layers(), SMALL, trials=10, strategy="random", log=log)
    assert again.evaluated == 4 and {d.key for d in again.designs} == {d.key for d in first.designs}
    assert json.loads(log.read_text().splitlines()[-1])["key"]


def test_parsers_and_bad_options():
    assert parse_area("10mm2") == 10 and parse_area("0.5 cm2") == 50
    assert parse_power("500mW") == pytest.approx(0.5) and parse_power("2W") == 2
    for bad in ("10", "-1mm2", "ten mm2"):
        with pytest.raises(ValueError, match="area"):
            parse_area(bad)
    with pytest.raises(ValueError, match="objective"):
        explore(_layers(), SMALL, objectives=("speed",))
    with pytest.raises(ValueError, match="strategy"):
        explore(_layers(), SMALL, strategy="anneal")
    with pytest.raises(ValueError, match="budget area_mm2"):
        Budgets(area_mm2=-1)


def test_cli_explore_writes_the_front_places_chips_and_resumes(tmp_path):
    from typer.testing import CliRunner

    from chipfit.cli import app

    space = tmp_path / "s.json"
    space.write_text(json.dumps(SMALL.to_dict()))
    out = tmp_path / "x"
    args = ["hw", "explore", "mobilenetv2_s28", "--hw-space", str(space), "--trials", "12", "--strategy", "random",
            "--out", str(out), "--place", "edge-npu"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "explore.json").read_text())
    assert len(rep["designs"]) == 12 and rep["front"]
    assert rep["placed"][0]["chip"] == "edge-npu" and rep["placed"][0]["placement"]["epsilon"] > 0
    assert (out / "explore_latency.png").stat().st_size > 1000
    assert "edge-npu:" in r.output
    r = CliRunner().invoke(app, args[:-2] + ["--trials", "15"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "explore.json").read_text())["stats"]["evaluated"] == 3
    r = CliRunner().invoke(app, ["hw", "explore", "mobilenetv2_s28", "--hw-space", str(space), "--area", "1um2",
                                 "--out", str(out / "none"), "--trials", "3", "--place", ""])
    assert r.exit_code == 2 and "no design meets the budgets" in r.output
    r = CliRunner().invoke(app, ["hw", "explore", "mobilenetv2_s28", "--area", "big"])
    assert r.exit_code == 2 and "area 'big'" in r.output
