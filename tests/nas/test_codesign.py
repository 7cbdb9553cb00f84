"""chipfit.nas.codesign: the joint space, the scorer (checked against the network-only simulator path), and
`chipfit search --hw-space` end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from chipfit.cli import app
from chipfit.hw.explore import Budgets
from chipfit.hw.space import HwSpace, chip_space
from chipfit.nas.codesign import HW, JointArch, JointSpace, Scorer
from chipfit.nas.latency import LatencyModel, Target
from chipfit.nas.space import quadranet_space

SMALL_HW = HwSpace(name="tiny", rows=(8, 16), cols=(8, 16), dataflow=("ws", "os"), sram_kb=(128, 512),
                   split=((50, 25, 25),), dram_gbps=(8,), sparsity=("dense",))


def test_joint_genes_decode_and_round_trip():
    js = JointSpace(quadranet_space(), SMALL_HW)
    genes = js.genes()
    assert [g for g, _ in genes if g.startswith(HW)] == ["hw.rows", "hw.cols", "hw.dataflow", "hw.sram_kb"]
    assert js.size() == quadranet_space().size() * SMALL_HW.size()
    rng = random.Random(0)
    values = {name: rng.randrange(len(labels)) for name, labels in genes}
    ja = js.decode(values)
    assert ja.hw.rows == SMALL_HW.rows[values["hw.rows"]]
    assert js.arch_from_dict(json.loads(json.dumps(ja.to_dict()))) == ja
    assert ja.key().startswith(ja.net.key()) and ja.hw.key() in ja.key()


def test_scorer_on_the_chip_space_matches_the_network_only_simulator():
    """A network on chip:edge-npu through the co-design scorer has the latency the search's simulator target gives,
    and the energy plus leakage."""
    net = quadranet_space()
    js = JointSpace(net, chip_space("edge-npu"))
    calls = []
    sc = Scorer(js, lambda a: calls.append(a.key()) or 0.5, budgets=Budgets(area_mm2=100.0), precision="int8")
    arch = net.sample(random.Random(1))
    ev = sc(JointArch(arch, js.hw.point(0)))
    t = Target("edge-npu", "simulator", precision="int8")
    est = LatencyModel(net, t).evaluate(arch)[t.label()]
    assert ev.objectives["latency_s"] == pytest.approx(est.latency_s)
    d = ev.extra["design"]
    assert d["dynamic_j"] == pytest.approx(est.energy_j) and ev.objectives["energy_j"] > est.energy_j
    assert ev.feasible and ev.constraints["fits buffers"] == 0
    sc(JointArch(arch, js.hw.point(0)))
    assert len(calls) == 1 and sc.accuracy_evaluations == 1 and sc.hw_evaluations == 2  # accuracy cached per network
    tight = Scorer(js, lambda a: 0.5, budgets=Budgets(area_mm2=1.0, power_w=0.1))(JointArch(arch, js.hw.point(0)))
    assert not tight.feasible and tight.constraints["area_mm2"] > 0 and tight.constraints["power_w"] > 0


FAST = ["--supernet-epochs", "1", "--supernet-steps", "2", "--batch-size", "8", "--n-val", "8", "--population", "4"]


def test_cli_joint_search_writes_networks_and_accelerators(png_tree, tmp_path, one_thread):
    space = tmp_path / "hw.json"
    space.write_text(json.dumps(SMALL_HW.to_dict()))
    out = tmp_path / "s"
    args = ["search", "quadranet_s28", "--data", str(png_tree), "--out", str(out), *FAST, "--hw-space", str(space),
            "--area", "6mm2", "--trials", "8"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "pareto.json").read_text())
    assert rep["codesign"] and len(rep["candidates"]) == 8
    for c in rep["candidates"]:
        assert c["feasible"] == (c["area_mm2"] <= 6.0)
        assert c["hw"]["rows"] in (8, 16)
    front = [c for c in rep["candidates"] if c["pareto"]]
    assert front
    for c in front:
        prof = yaml.safe_load(Path(c["hw_file"]).read_text())
        assert prof["array"]["rows"]["value"] == c["hw"]["rows"]
        assert prof["array"]["ofmap_sram_bytes"]["value"] == c["hw"]["sram_kb"] * 1024 // 4
    # the accelerator file runs in chipfit simulate and gives the latency the search recorded
    best = max(front, key=lambda c: c["accuracy_estimate"])
    r2 = CliRunner().invoke(app, ["simulate", best["config_file"], "--hw", best["hw_file"], "--json",
                                  str(tmp_path / "sim.json"), "--precision", "int8"])
    assert r2.exit_code == 0, r2.output
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert sim["total"]["time_s"] == pytest.approx(best["latency_s"])
    assert (out / "codesign_latency.png").stat().st_size > 1000
    # more trials continue the same study
    r = CliRunner().invoke(app, [*args[:-1], "10"])
    assert r.exit_code == 0, r.output
    rep2 = json.loads((out / "pareto.json").read_text())
    assert [c["key"] for c in rep2["candidates"][:8]] == [c["key"] for c in rep["candidates"]]


@pytest.mark.parametrize(("args", "message"), [
    (["--area", "5mm2"], "give --hw-space too"),
    (["--hw-space", "nosuch"], "not a built-in"),
    (["--hw-space", "edge", "--strategy", "gradient", "--latency", "1ms"], "searches the network only"),
    (["--hw-space", "edge", "--area", "lots"], "area 'lots'"),
    (["--hw-inner", "5"], "give --hw-space too"),
    (["--hw-space", "edge", "--hw-inner", "5", "--hw-pick", "fastest"], "one of search, latency"),
])
def test_bad_joint_options(png_tree, tmp_path, args, message):
    r = CliRunner().invoke(app, ["search", "quadranet_s28", "--data", str(png_tree), "--out", str(tmp_path / "x"),
                                 *FAST, *args])
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())


def test_nested_scorer_explores_once_per_network_and_picks_by_weight():
    from chipfit.nas.codesign import WEIGHTS, NestedArch, NestedSpace

    net = quadranet_space()
    ns = NestedSpace(net, SMALL_HW)
    assert [g for g, _ in ns.genes()][-1] == "hw.pick" and ns.size() == net.size() * len(WEIGHTS)
    sc = Scorer(JointSpace(net, SMALL_HW), lambda a: 0.5, budgets=Budgets(area_mm2=50.0), inner=SMALL_HW.size())
    arch = net.sample(random.Random(2))
    evs = {p: sc(NestedArch(arch, p)) for p in ("latency", "edp", "energy")}
    assert sc.hw_evaluations == SMALL_HW.size()  # one exploration (here the whole space), three picks
    lat = {p: e.objectives["latency_s"] for p, e in evs.items()}
    en = {p: e.objectives["energy_j"] for p, e in evs.items()}
    # against every design of the small space: the latency pick is the fastest feasible, the energy pick the leanest
    designs = [d for d in sc._explored[arch.key()] if d.feasible]
    assert lat["latency"] == pytest.approx(min(d.latency_s for d in designs))
    assert en["energy"] == pytest.approx(min(d.energy_j for d in designs))
    assert lat["latency"] <= lat["edp"] <= lat["energy"] and en["energy"] <= en["edp"] <= en["latency"]
    assert ns.arch_from_dict(json.loads(json.dumps(NestedArch(arch, "edp").to_dict()))) == NestedArch(arch, "edp")


def test_cli_nested_search(png_tree, tmp_path, one_thread):
    space = tmp_path / "hw.json"
    space.write_text(json.dumps(SMALL_HW.to_dict()))
    out = tmp_path / "n"
    r = CliRunner().invoke(app, ["search", "quadranet_s28", "--data", str(png_tree), "--out", str(out), *FAST,
                                 "--hw-space", str(space), "--hw-inner", "10", "--trials", "5"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "pareto.json").read_text())
    assert rep["hw_search"] == {"inner": 10, "mode": "nested"} and len(rep["candidates"]) == 5
    assert all(c["pick"] in ("latency", "l3e1", "edp", "l1e3", "energy") for c in rep["candidates"])
    assert all("#" in c["key"] for c in rep["candidates"])
    assert rep["stats"]["hw_evaluations"] <= 10 * rep["stats"]["networks"]
