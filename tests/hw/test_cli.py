"""`chipfit hw list/show/calibrate` through typer's runner: output, exit codes, clean errors."""

from __future__ import annotations

import json
import re

import yaml
from typer.testing import CliRunner

from chipfit.cli import app
from chipfit.hw import list_chips, load_chip

runner = CliRunner()


def _flat(text: str) -> str:
    """Output with rich's wrapping and table borders folded away, for substring checks."""
    return " ".join(text.replace("│", " ").split())


def test_list_shows_every_profile_with_its_roofline_numbers():
    r = runner.invoke(app, ["hw", "list"])
    assert r.exit_code == 0, r.output
    for name in list_chips():
        assert name in r.output
    out = _flat(r.output)
    tpu = load_chip("tpu-v1")
    assert "int8 91.75 TOPS" in out and "fp16 1.331 TFLOPS" in out
    assert f"{tpu.ridge('int8'):,.0f} (int8)" in out  # ridge at the best dtype
    assert "28 " in out and "1555" in out  # TPU on-chip MiB, A100 DRAM GB/s


def test_list_says_which_targets_can_be_simulated():
    r = runner.invoke(app, ["hw", "list"])
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line for line in (_flat(x) for x in r.output.splitlines()) if line.split()}
    assert "simulate" in r.output
    assert "256x256 ws" in rows["tpu-v1"] and "32x32 ws" in rows["edge-npu"] and "64x72 os" in rows["dadiannao"]
    assert "12x14 ws" in rows["eyeriss-v1"] and "16x16 os" in rows["diannao"]
    assert not re.search(r"\d+x\d+ (ws|os|is)", rows["a100"]) and rows["a100"].endswith("- built-in")


def test_list_marks_a_broken_user_profile_and_keeps_going(isolated_chipfit_home):
    (isolated_chipfit_home / "hw").mkdir()
    (isolated_chipfit_home / "hw" / "broken.yaml").write_text("name: broken\n")
    r = runner.invoke(app, ["hw", "list"])
    assert r.exit_code == 0, r.output
    out = _flat(r.output)
    assert "invalid" in out and "missing required field" in out and "tpu-v1" in out and "user" in out


def test_show_gives_every_number_with_its_source():
    r = runner.invoke(app, ["hw", "show", "tpu-v1"])
    assert r.exit_code == 0, r.output
    out = _flat(r.output)
    chip = load_chip("tpu-v1")
    for path in chip.sources:
        assert path in out, path
    assert "Jouppi et al., ISCA 2017: 256 x 256 = 65,536 int8 MACs" in out
    assert "9.175e+13" in out and "Horowitz ISSCC 2014" in out and chip.path in out


def test_show_gives_the_array_section_with_its_sources():
    r = runner.invoke(app, ["hw", "show", "edge-npu"])
    assert r.exit_code == 0, r.output
    out = _flat(r.output)
    arch = load_chip("edge-npu").array
    for key in ("rows", "cols", "dataflow", "ifmap_sram_bytes", "word_bits", "vector_lanes", "sparsity", "links"):
        assert f"array.{key}" in out and arch.sources[key] in out, key
    assert "array.sparsity nm" in out and "array.dataflow ws" in out
    assert "what chipfit simulate runs" in out
    r = runner.invoke(app, ["hw", "show", "a100"])
    assert r.exit_code == 0 and "array none" in _flat(r.output) and "chipfit simulate cannot run" in _flat(r.output)


def test_show_json_is_the_profile_dict():
    r = runner.invoke(app, ["hw", "show", "jetson-tx2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == json.loads(json.dumps(load_chip("jetson-tx2").to_dict()))


def test_show_a_file(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({
        "name": "edge", "peak_ops_per_s": {"int8": {"value": 2e12, "source": "vendor sheet"}},
        "dram_bandwidth_bytes_per_s": None, "onchip_bytes": {"value": 4e6, "source": "vendor sheet"},
        "efficiency": {"value": 0.5, "source": "assumption: half"}}))
    r = runner.invoke(app, ["hw", "show", str(path)])
    assert r.exit_code == 0, r.output
    out = _flat(r.output)
    assert "peak_ops_per_s.int8 2e+12 vendor sheet" in out and "dram_bandwidth_bytes_per_s none" in out


def test_unknown_chip_is_a_clean_error():
    r = runner.invoke(app, ["hw", "show", "tpu-v9"])
    assert r.exit_code == 2
    out = _flat(r.output)
    assert out.startswith("error: unknown chip 'tpu-v9'. Did you mean: tpu-v1?") and "chipfit hw list" in out
    assert "Traceback" not in r.output and r.exception is not None and isinstance(r.exception, SystemExit)


def test_bad_file_is_a_clean_error_naming_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\npeak_ops_per_s: {fp16: 1e12}\ndram_bandwidth_bytes_per_s: null\n"
                    "onchip_bytes: {value: 1, source: x}\nefficiency: {value: 0.5, source: x}\n")
    r = runner.invoke(app, ["hw", "show", str(path)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"error: {path}: field 'peak_ops_per_s.fp16' is a bare value" in _flat(r.output)
    path.write_text("name: [bad")
    r = runner.invoke(app, ["hw", "show", str(path)])
    assert r.exit_code == 2 and "not valid YAML (line" in r.output and "Traceback" not in r.output


def test_calibrate_quick_writes_a_valid_profile(tmp_path):
    out = tmp_path / "sub" / "host.yaml"
    r = runner.invoke(app, ["hw", "calibrate", "--quick", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output
    chip = load_chip(out)
    assert chip.name == "host" and chip.kind == "cpu" and chip.efficiency == 1.0
    assert chip.peak("fp32") > 1e8 and chip.dram_bandwidth_bytes_per_s > 1e8 and 0 < chip.op_overhead_s < 1e-2
    assert set(chip.peak_ops_per_s) == {"fp32"}
    src = chip.sources["peak_ops_per_s.fp32"]
    assert src.startswith("measured by chipfit hw calibrate on ") and " threads" in src
    assert chip.sources["dram_bandwidth_bytes_per_s"].startswith("measured by chipfit hw calibrate")


def test_calibrate_defaults_to_the_user_folder_which_overrides_the_builtin(isolated_chipfit_home):
    builtin = load_chip("host")
    r = runner.invoke(app, ["hw", "calibrate", "--quick"])
    assert r.exit_code == 0, r.output
    mine = load_chip("host")
    assert mine.path == str(isolated_chipfit_home / "hw" / "host.yaml") and mine.path != builtin.path


def test_calibrate_to_an_unwritable_place_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = runner.invoke(app, ["hw", "calibrate", "--quick", "--out", str(blocker / "host.yaml")])
    assert r.exit_code == 2 and "error: cannot write the profile" in r.output and "Traceback" not in r.output


def test_show_a_scalesim_cfg(tmp_path):
    cfg = tmp_path / "small.cfg"
    cfg.write_text("[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nIfmapSramSzkB: 64\nFilterSramSzkB: 64\n"
                   "OfmapSramSzkB: 64\nDataflow: os\n")
    r = runner.invoke(app, ["hw", "show", str(cfg)])
    assert r.exit_code == 0, r.output
    out = _flat(r.output)
    assert "peak_ops_per_s.int8 1.28e+11 derived from SCALE-Sim config small.cfg" in out
    assert "array.rows 8 SCALE-Sim config: ArrayHeight" in out and "array.dataflow os" in out
