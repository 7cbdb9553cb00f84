"""`chipfit simulate` through typer's runner: table, files, clean errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chipfit.cli import app

runner = CliRunner()


def test_simulate_topology_with_cfg(tmp_path, scalesim_files):
    topo, cfgs = scalesim_files
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["simulate", str(topo), "--hw", str(cfgs["os"]), "--json", str(out), "--csv",
                            str(tmp_path / "r.csv"), "--plot", str(tmp_path / "r.png")])
    assert r.exit_code == 0, r.output
    assert "101" in r.output and "inferences/s" in r.output
    data = json.loads(out.read_text())
    assert [x["compute_cycles"] for x in data["layers"]] == [101, 275, 671]
    assert data["total"]["cycles"] == 101 + 275 + 671
    assert (tmp_path / "r.png").stat().st_size > 1000
    assert (tmp_path / "r.csv").read_text().startswith("name,kind,chip")


def test_simulate_options(scalesim_files):
    topo, _ = scalesim_files
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "edge-npu", "--chips", "2", "--sparsity", "2:4",
                            "--batch", "2", "--dataflow", "is"])
    assert r.exit_code == 0, r.output
    assert "2 chips" in r.output and "2:4" in r.output


def test_simulate_errors_exit_2_without_traceback(tmp_path, scalesim_files):
    topo, _ = scalesim_files
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "no-such-arch"])
    assert r.exit_code == 2 and "unknown" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                   "Strides,\nx, 8, 8, 3,\n")
    r = runner.invoke(app, ["simulate", str(bad), "--hw", "edge-npu"])
    assert r.exit_code == 2 and "row 2" in r.output
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "edge-npu", "--sparsity", "0.5"])
    assert r.exit_code == 2 and "sparsity" in r.output


def test_simulate_fuse(tmp_path, scalesim_files):
    out = tmp_path / "f.json"
    r = runner.invoke(app, ["simulate", "mobilenetv2_s28", "--hw", "edge-npu", "--json", str(out)])
    assert r.exit_code == 0, r.output
    layers = json.loads(out.read_text())["layers"]
    assert layers[0]["name"] == "stem.0:conv" and layers[0]["detail"]["fused"][-1].endswith("hardtanh")
    assert not any(x["kind"] == "eltwise" and "body.0.2" in x["name"] for x in layers)  # ReLU6 rides on its conv
    topo, _ = scalesim_files
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "edge-npu"])
    assert r.exit_code == 0 and "no layer was fused" not in r.output  # a topology is taken as given
    r = runner.invoke(app, ["simulate", "mobilenetv2_s28", "--hw", "edge-npu", "--unfused", "--json", str(out)])
    assert r.exit_code == 0 and any(x["kind"] == "eltwise" for x in json.loads(out.read_text())["layers"])


def test_simulate_old_options_still_work_and_say_so(scalesim_files):
    topo, _ = scalesim_files
    r = runner.invoke(app, ["simulate", "quadranet_s28", "--arch", "eyeriss-like", "--bits", "16", "--fuse"])
    assert r.exit_code == 0, r.output
    for said in ("--arch is now --hw", "eyeriss-like is now eyeriss-v1", "--precision", "--fuse is the default"):
        assert said in " ".join(r.output.split()), said
    new = runner.invoke(app, ["simulate", "quadranet_s28", "--hw", "eyeriss-v1", "--precision", "int16"])
    assert new.exit_code == 0 and new.output.splitlines()[-4:] == r.output.splitlines()[-4:]


def test_simulate_never_writes_over_its_input(tmp_path, scalesim_files):
    topo, _ = scalesim_files
    before = topo.read_text()
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "edge-npu", "--csv", str(topo)])
    assert r.exit_code == 2 and "is an input of this command" in " ".join(r.output.split())
    assert topo.read_text() == before
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "edge-npu", "--csv", str(tmp_path / "a"),
                            "--json", str(tmp_path / "a")])
    assert r.exit_code == 2 and "same file" in r.output


def test_an_unwritable_output_is_one_clean_message(tmp_path, scalesim_files):
    topo, _ = scalesim_files
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "edge-npu", "--json", str(blocker / "out.json")])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output


def test_simulating_a_topology_does_not_import_torch(scalesim_files):
    """A SCALE-Sim topology needs neither the loader nor the cost engine: the CLI answers without torch."""
    import subprocess
    import sys

    topo, _ = scalesim_files
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom chipfit.cli import app\n"
            f"r = CliRunner().invoke(app, ['simulate', {str(topo)!r}, '--hw', 'edge-npu'])\n"
            "print(r.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "False"], out.stdout + out.stderr


def test_simulate_on_the_in_memory_and_binary_engines(tmp_path, scalesim_files):
    """--hw isaac-like / xnor run the engines of chipfit.hw.sim.engines on the same layers; their JSON totals are the
    engine's own."""
    from chipfit.hw.sim import ISAAC_LIKE, read_topology

    topo, _ = scalesim_files
    out = tmp_path / "e.json"
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "isaac-like", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "isaac-like" in r.output and "crossbar" in r.output
    want = ISAAC_LIKE.run(read_topology(topo))
    got = json.loads(out.read_text())
    assert got["total"]["latency_s"] == pytest.approx(want.latency_s) and got["engine"] == "isaac-like"
    r = runner.invoke(app, ["simulate", "mobilenetv2_s28", "--hw", "xnor"])
    assert r.exit_code == 0, r.output
    assert "first and last layers with weights kept at int8" in " ".join(r.output.split())
    r = runner.invoke(app, ["simulate", str(topo), "--hw", "xnor", "--dataflow", "os"])
    assert r.exit_code == 2 and "not a systolic array" in r.output
