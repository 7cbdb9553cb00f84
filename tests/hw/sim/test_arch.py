"""Architectures: the built-in YAML files, their validation (shared with the chip profiles), SCALE-Sim .cfg files."""

from __future__ import annotations

import pytest
import yaml

from chipfit.hw.chip import HOROWITZ_45NM
from chipfit.hw.sim.arch import list_archs, load_arch


def test_builtins_load_and_cite_every_number():
    names = list_archs()
    assert {"tpu-v1-like", "eyeriss-like", "diannao-like", "edge-npu"} <= set(names)
    for name in names:
        a = load_arch(name)
        for key in ("rows", "cols", "dataflow", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes",
                    "word_bits", "clock_hz", "vector_lanes", "dram_bandwidth_bytes_per_s"):
            assert a.sources.get(key), f"{name}: {key} has no source"
        assert a.energy.dram_pj_per_byte > 0


def test_tpu_v1_like_numbers():
    a = load_arch("tpu-v1-like")
    assert (a.rows, a.cols, a.dataflow, a.word_bits) == (256, 256, "ws", 8)
    assert a.ifmap_sram_bytes == 24 * 2**20
    assert "Jouppi" in a.sources["rows"]
    assert a.peak_macs_per_s * 2 == pytest.approx(91.75e12, rel=1e-3)  # 92 TOPS
    assert a.energy.mac_pj["int8"] == pytest.approx(0.23)


def test_edge_npu_defaults_to_horowitz_energy():
    a = load_arch("edge-npu")
    assert (a.rows, a.cols, a.ifmap_sram_bytes + a.filter_sram_bytes + a.ofmap_sram_bytes) == (32, 32, 512 * 1024)
    assert a.energy.sram_pj_per_byte == HOROWITZ_45NM.sram_pj_per_byte
    assert a.sources["rows"].startswith("assumption")


def _write(tmp_path, data, name="a.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def _good():
    return yaml.safe_load(open(load_arch("edge-npu").path))


def test_yaml_missing_field_names_file_and_field(tmp_path):
    data = _good()
    del data["rows"]
    p = _write(tmp_path, data)
    with pytest.raises(ValueError, match=r"a\.yaml: missing required field 'rows'"):
        load_arch(p)


def test_yaml_bare_number_and_bad_dataflow(tmp_path):
    data = _good()
    data["cols"] = 32
    with pytest.raises(ValueError, match=r"field 'cols' is a bare value .* without a source"):
        load_arch(_write(tmp_path, data))
    data = _good()
    data["dataflow"] = {"value": "rs", "source": "x"}
    with pytest.raises(ValueError, match=r"field 'dataflow.value' must be ws, os or is"):
        load_arch(_write(tmp_path, data))
    data = _good()
    data["rowz"] = 3
    with pytest.raises(ValueError, match=r"unknown field 'rowz' \(did you mean 'rows'\?\)"):
        load_arch(_write(tmp_path, data))


def test_yaml_energy_override(tmp_path):
    data = _good()
    data["energy"] = {"dram_pj_per_byte": {"value": 20, "source": "assumption: LPDDR5"}}
    a = load_arch(_write(tmp_path, data))
    assert a.energy.dram_pj_per_byte == 20
    assert a.energy.mac_pj == HOROWITZ_45NM.mac_pj


def test_unknown_name_suggests(tmp_path):
    with pytest.raises(ValueError, match="Did you mean: edge-npu"):
        load_arch("edge-npux")


def test_scalesim_cfg(scalesim_files):
    _, cfgs = scalesim_files
    a = load_arch(cfgs["os"])
    assert (a.rows, a.cols, a.dataflow, a.ifmap_sram_bytes) == (4, 3, "os", 1024)
    assert a.dram_bandwidth_bytes_per_s is None and a.psum_to_dram


def test_scalesim_cfg_errors(tmp_path, scalesim_files):
    _, cfgs = scalesim_files
    text = cfgs["ws"].read_text()
    bad = tmp_path / "bad.cfg"
    bad.write_text(text.replace("ArrayWidth: 3\n", ""))
    with pytest.raises(ValueError, match=r"bad\.cfg: field 'ArrayWidth' is missing from section"):
        load_arch(bad)
    bad.write_text(text.replace("IfmapSramSzkB: 1", "IfmapSramSzkB: lots"))
    with pytest.raises(ValueError, match=r"field 'IfmapSramSzkB' must be a positive integer, got 'lots'"):
        load_arch(bad)
    user = text.replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: USER")
    bad.write_text(user.replace("Bandwidth: 10", "Bandwidth: 16"))
    assert load_arch(bad).dram_bytes_per_cycle == 16
