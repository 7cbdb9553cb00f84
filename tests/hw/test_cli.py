"""`chipfit hw list/show/calibrate` through typer's runner."""

from __future__ import annotations

from typer.testing import CliRunner

from chipfit.cli import app

runner = CliRunner()


def test_list_and_show():
    r = runner.invoke(app, ["hw", "list"])
    assert r.exit_code == 0 and "tpu-v1" in r.output and "eyeriss-v1" in r.output
    r = runner.invoke(app, ["hw", "show", "tpu-v1"])
    assert r.exit_code == 0 and "Jouppi" in r.output


def test_unknown_chip_is_a_clean_error():
    r = runner.invoke(app, ["hw", "show", "tpu-v9"])
    assert r.exit_code == 2
    assert "unknown chip 'tpu-v9'" in r.output and "Traceback" not in r.output


def test_calibrate_quick_writes_a_valid_profile(tmp_path):
    out = tmp_path / "host.yaml"
    r = runner.invoke(app, ["hw", "calibrate", "--quick", "--out", str(out)])
    assert r.exit_code == 0, r.output
    from chipfit.hw import load_chip

    chip = load_chip(out)
    assert chip.name == "host" and chip.peak("fp32") > 1e8 and chip.dram_bandwidth_bytes_per_s > 1e8
    assert "measured by chipfit hw calibrate" in chip.sources["peak_ops_per_s.fp32"]
