"""The simulator's arrays: chip profiles' array sections, their validation, old names and files, SCALE-Sim .cfg."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import pytest
import yaml

from chipfit.hw import Chip, load_chip
from chipfit.hw.chip import HOROWITZ_45NM
from chipfit.hw.cited import EnergyTable
from chipfit.hw.sim import deprecated_name
from chipfit.hw.sim.arch import Arch, list_archs, load_arch

# The numbers of the simulator's own architecture files (src/chipfit/hw/archs/*.yaml) before they merged into the
# chip profiles, copied from those files: every simulator figure depends on these alone, so they must not move.
# energy: the entries the file gave over the Horowitz 45 nm defaults.
OLD_ARCHS = {
    "tpu-v1-like": ("tpu-v1", dict(
        rows=256, cols=256, dataflow="ws", ifmap_sram_bytes=25165824, filter_sram_bytes=262144,
        ofmap_sram_bytes=4194304, word_bits=8, dram_bandwidth_bytes_per_s=34.0e9, clock_hz=700.0e6, vector_lanes=256,
        sparsity=(), index_bits=4, link_bandwidth_bytes_per_s=6.4e9, links=4, psum_to_dram=False),
        {"mac_pj": {"int8": 0.23}}),
    "eyeriss-like": ("eyeriss-v1", dict(
        rows=12, cols=14, dataflow="ws", ifmap_sram_bytes=55296, filter_sram_bytes=75264, ofmap_sram_bytes=55296,
        word_bits=16, dram_bandwidth_bytes_per_s=1.6e9, clock_hz=200.0e6, vector_lanes=14, sparsity=("unstructured",),
        index_bits=4, link_bandwidth_bytes_per_s=6.4e9, links=4, psum_to_dram=False),
        {"sram_pj_per_byte": 2.5}),
    "diannao-like": ("diannao", dict(
        rows=16, cols=16, dataflow="os", ifmap_sram_bytes=2048, filter_sram_bytes=32768, ofmap_sram_bytes=2048,
        word_bits=16, dram_bandwidth_bytes_per_s=12.8e9, clock_hz=0.98e9, vector_lanes=16, sparsity=(), index_bits=4,
        link_bandwidth_bytes_per_s=6.4e9, links=4, psum_to_dram=False),
        {"sram_pj_per_byte": 2.5}),
    "dadiannao-like": ("dadiannao", dict(
        rows=64, cols=72, dataflow="os", ifmap_sram_bytes=4194304, filter_sram_bytes=33554432,
        ofmap_sram_bytes=4194304, word_bits=16, dram_bandwidth_bytes_per_s=None, clock_hz=606.0e6, vector_lanes=256,
        sparsity=(), index_bits=4, link_bandwidth_bytes_per_s=6.4e9, links=4, psum_to_dram=False),
        {}),
    "edge-npu": ("edge-npu", dict(
        rows=32, cols=32, dataflow="ws", ifmap_sram_bytes=262144, filter_sram_bytes=131072, ofmap_sram_bytes=131072,
        word_bits=8, dram_bandwidth_bytes_per_s=8.0e9, clock_hz=800.0e6, vector_lanes=32, sparsity=("nm",),
        index_bits=4, link_bandwidth_bytes_per_s=6.4e9, links=4, psum_to_dram=False),
        {}),
}
NOT_COMPARED = {"name", "path", "sources", "description", "notes"}


def _write(tmp_path, data, name="a.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def _good():
    return yaml.safe_load(Path(load_chip("edge-npu").path).read_text())


def _energy(over: dict) -> EnergyTable:
    h = HOROWITZ_45NM
    return EnergyTable(mac_pj={**h.mac_pj, **over.get("mac_pj", {})}, add_pj={**h.add_pj, **over.get("add_pj", {})},
                       sram_pj_per_byte=over.get("sram_pj_per_byte", h.sram_pj_per_byte),
                       dram_pj_per_byte=over.get("dram_pj_per_byte", h.dram_pj_per_byte))


@pytest.mark.parametrize("old", list(OLD_ARCHS))
def test_every_simulator_number_is_what_the_old_arch_file_had(old):
    new, numbers, energy = OLD_ARCHS[old]
    a = load_arch(new)
    fields = {f.name for f in dataclasses.fields(Arch)} - NOT_COMPARED
    assert fields == set(numbers) | {"energy"}  # the table covers every field the simulator reads
    assert {k: getattr(a, k) for k in numbers} == numbers
    assert a.energy == _energy(energy)
    assert a.name == new and a.path == load_chip(new).path


def test_list_archs_names_the_chips_with_an_array():
    assert list_archs() == ["dadiannao", "diannao", "edge-npu", "eyeriss-v1", "tpu-v1"]
    for name in list_archs():
        a = load_arch(name)
        for key in ("rows", "cols", "dataflow", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes",
                    "word_bits", "clock_hz", "vector_lanes", "dram_bandwidth_bytes_per_s", "sparsity", "links",
                    "link_bandwidth_bytes_per_s", "energy.mac_pj.int8", "energy.sram_pj_per_byte"):
            assert a.sources.get(key), f"{name}: {key} has no source"
        assert a.energy.dram_pj_per_byte > 0


def test_tpu_v1_numbers():
    a = load_arch("tpu-v1")
    assert (a.rows, a.cols, a.dataflow, a.word_bits) == (256, 256, "ws", 8)
    assert a.ifmap_sram_bytes == 24 * 2**20
    assert "Jouppi" in a.sources["rows"] and a.sources["clock_hz"] == load_chip("tpu-v1").sources["clock_hz"]
    assert a.peak_macs_per_s * 2 == pytest.approx(91.75e12, rel=1e-3)  # 92 TOPS
    assert a.energy.mac_pj["int8"] == pytest.approx(0.23)
    assert "unified buffer" in a.notes


def test_no_dram_is_unlimited_with_a_source():
    a = load_arch("dadiannao")
    assert a.dram_bandwidth_bytes_per_s is None and a.dram_bytes_per_cycle is None
    assert "no off-chip DRAM" in a.sources["dram_bandwidth_bytes_per_s"]


def test_edge_npu_defaults_to_horowitz_energy():
    a = load_arch("edge-npu")
    assert (a.rows, a.cols, a.ifmap_sram_bytes + a.filter_sram_bytes + a.ofmap_sram_bytes) == (32, 32, 512 * 1024)
    assert a.energy.sram_pj_per_byte == HOROWITZ_45NM.sram_pj_per_byte
    assert a.sources["rows"].startswith("assumption")


# --- old names and files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("old", [k for k in OLD_ARCHS if k != "edge-npu"])
def test_old_names_warn_and_give_the_same_array(old):
    new = OLD_ARCHS[old][0]
    assert deprecated_name(old) == new
    with pytest.warns(DeprecationWarning, match=rf"^'{old}' is deprecated: use --hw {new} "):
        a = load_arch(old)
    assert a == load_arch(new) == load_chip(new).array


def test_current_names_do_not_warn():
    assert deprecated_name("edge-npu") is None and deprecated_name("tpu-v1") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_arch("edge-npu")
        load_arch("tpu-v1")


def test_a_user_profile_named_like_an_old_arch_is_a_profile(isolated_chipfit_home):
    (isolated_chipfit_home / "hw").mkdir()
    data = yaml.safe_load(Path(load_chip("edge-npu").path).read_text())
    (isolated_chipfit_home / "hw" / "tpu-v1-like.yaml").write_text(yaml.safe_dump(dict(data, name="tpu-v1-like")))
    assert deprecated_name("tpu-v1-like") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_arch("tpu-v1-like").rows == 32


def test_an_old_format_arch_file_still_loads_with_a_warning(tmp_path):
    # what src/chipfit/hw/archs/diannao-like.yaml held, less its sources
    old = {"name": "mine", "rows": 16, "cols": 16, "dataflow": "os", "ifmap_sram_bytes": 2048,
           "filter_sram_bytes": 32768, "ofmap_sram_bytes": 2048, "word_bits": 16, "dram_bandwidth_bytes_per_s": 12.8e9,
           "clock_hz": 0.98e9, "vector_lanes": 16, "sparsity": [], "link_bandwidth_bytes_per_s": 6.4e9, "links": 4,
           "energy": {"sram_pj_per_byte": 2.5}}
    data = {k: v if k == "name" else {"value": v, "source": "x"} for k, v in old.items() if k != "energy"}
    data["energy"] = {"sram_pj_per_byte": {"value": 2.5, "source": "x"}}
    p = _write(tmp_path, data, "old.yaml")
    with pytest.warns(DeprecationWarning, match=r"old\.yaml: an architecture file of its own is deprecated"):
        a = load_arch(p)
    assert dataclasses.replace(a, name="diannao", path=None, description="", notes="") == \
        dataclasses.replace(load_arch("diannao"), path=None, description="", notes="")
    del data["clock_hz"]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"missing required field 'clock_hz'"):
        load_arch(_write(tmp_path, data, "old.yaml"))


# --- the array section of a profile ----------------------------------------------------------------------------


def test_a_chip_and_its_file_give_the_array(tmp_path):
    chip = load_chip("edge-npu")
    assert load_arch(chip) is chip.array
    a = load_arch(_write(tmp_path, _good()))
    assert a == dataclasses.replace(chip.array, path=a.path) and a.path == str(tmp_path / "a.yaml")
    assert load_arch(a) is a


def test_a_chip_without_an_array_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"chip 'a100' has no modelled array to simulate .*no 'array' section.*"
                                         r"Targets that can be simulated: dadiannao, diannao, edge-npu, eyeriss-v1, "
                                         r"tpu-v1; a SCALE-Sim \.cfg works too"):
        load_arch("a100")
    data = _good()
    del data["array"]
    with pytest.raises(ValueError, match=r"chip 'edge-npu' has no modelled array"):
        load_arch(_write(tmp_path, data))
    with pytest.raises(ValueError, match=r"chip 'a100' has no modelled array"):
        load_arch(load_chip("a100"))


def _bad(tmp_path, mutate):
    data = _good()
    mutate(data["array"])
    p = _write(tmp_path, data)
    with pytest.raises(ValueError) as e:
        load_chip(p)
    assert str(e.value).startswith(f"{p}: ")
    return str(e.value)


@pytest.mark.parametrize("mutate,pattern", [
    (lambda a: a.pop("rows"), r"missing required field 'array\.rows': it must be \{value: <PE rows"),
    (lambda a: a.update(rows={"value": 3.5, "source": "x"}), r"field 'array\.rows\.value' must be a positive integer"),
    (lambda a: a.update(rows={"value": "many", "source": "x"}), r"field 'array\.rows\.value' must be a positive num"),
    (lambda a: a.update(cols=32), r"field 'array\.cols' is a bare value \(32\) without a source"),
    (lambda a: a.update(dataflow={"value": "rs", "source": "x"}), r"field 'array\.dataflow\.value' must be ws, os"),
    (lambda a: a.update(rowz=3), r"unknown field 'array\.rowz' \(did you mean 'rows'\?\)"),
    (lambda a: a.update(sparsity={"value": ["2:4"], "source": "x"}), r"field 'array\.sparsity\.value' must be a list"),
    (lambda a: a.update(clock_hz={"value": 0, "source": "x"}), r"field 'array\.clock_hz\.value' must be a positive"),
    (lambda a: a.update(energy={"mac": 1}), r"field 'array\.energy' has unknown key 'mac' \(did you mean 'mac_pj'"),
    (lambda a: a.update(energy={"sram_pj_per_byte": 2.5}), r"field 'array\.energy\.sram_pj_per_byte' is a bare"),
    (lambda a: a.update(links={"value": 4}), r"field 'array\.links\.source' must be a non-empty string"),
])
def test_a_bad_array_field_names_its_path(tmp_path, mutate, pattern):
    message = _bad(tmp_path, mutate)
    assert re.search(pattern, message), message


def test_an_array_section_that_is_not_a_mapping(tmp_path):
    data = _good()
    data["array"] = [32, 32]
    with pytest.raises(ValueError, match=r"field 'array' must be a mapping of the simulator's array fields \(rows, "
                                         r"cols, .*got list"):
        load_chip(_write(tmp_path, data))


def test_an_array_needs_a_clock(tmp_path):
    data = _good()
    del data["clock_hz"]
    with pytest.raises(ValueError, match=r"the array needs a clock: give the chip's field 'clock_hz' \(or "
                                         r"'array\.clock_hz'\)"):
        load_chip(_write(tmp_path, data))
    data["array"]["clock_hz"] = {"value": 1e9, "source": "array clock"}
    assert load_chip(_write(tmp_path, data)).array.clock_hz == 1e9


def test_the_array_may_override_clock_dram_and_energy_each_with_its_source(tmp_path):
    data = _good()
    data["array"]["clock_hz"] = {"value": 400e6, "source": "assumption: the array's own clock domain"}
    data["array"]["dram_bandwidth_bytes_per_s"] = {"value": None, "source": "what-if: unlimited"}
    data["array"]["energy"] = {"sram_pj_per_byte": {"value": 2.5, "source": "small banks"}}
    chip = load_chip(_write(tmp_path, data))
    a = chip.array
    assert (chip.clock_hz, chip.dram_bandwidth_bytes_per_s, chip.energy) == (800e6, 8e9, HOROWITZ_45NM)
    assert (a.clock_hz, a.dram_bandwidth_bytes_per_s, a.energy.sram_pj_per_byte) == (400e6, None, 2.5)
    assert a.energy.mac_pj == chip.energy.mac_pj and a.energy.dram_pj_per_byte == chip.energy.dram_pj_per_byte
    assert a.sources["clock_hz"] == "assumption: the array's own clock domain"
    assert a.sources["dram_bandwidth_bytes_per_s"] == "what-if: unlimited"
    assert a.sources["energy.sram_pj_per_byte"] == "small banks"
    assert a.sources["energy.mac_pj.int8"] == chip.sources["energy.mac_pj.int8"]
    # the overrides are what to_dict writes into the section, and the profile reads back equal
    section = chip.to_dict()["array"]
    assert section["clock_hz"] == data["array"]["clock_hz"] and section["energy"] == data["array"]["energy"]
    assert Chip.from_dict(json.loads(json.dumps(chip.to_dict()))) == chip


@pytest.mark.parametrize("name", ["dadiannao", "diannao", "edge-npu", "eyeriss-v1", "tpu-v1"])
def test_builtin_sections_round_trip_without_overrides(name):
    chip = load_chip(name)
    section = chip.to_dict()["array"]
    assert not {"clock_hz", "dram_bandwidth_bytes_per_s", "energy"} & set(section)
    assert Chip.from_dict(json.loads(json.dumps(chip.to_dict()))).array == chip.array


def test_unknown_name_suggests():
    with pytest.raises(ValueError, match="Did you mean: edge-npu"):
        load_arch("edge-npux")


# --- SCALE-Sim .cfg --------------------------------------------------------------------------------------------


def test_scalesim_cfg(scalesim_files):
    _, cfgs = scalesim_files
    a = load_arch(cfgs["os"])
    assert (a.rows, a.cols, a.dataflow, a.ifmap_sram_bytes) == (4, 3, "os", 1024)
    assert a.dram_bandwidth_bytes_per_s is None and a.psum_to_dram


def test_scalesim_cfg_through_load_chip(tmp_path, scalesim_files):
    _, cfgs = scalesim_files
    chip = load_chip(cfgs["ws"])
    assert chip.array == load_arch(cfgs["ws"])  # the config's array, unchanged
    assert chip.name == "ws" and chip.peak_ops_per_s == {"int8": 4 * 3 * 2 * 1e9}
    assert chip.onchip_bytes == 3 * 1024 and chip.efficiency == 1.0 and chip.dram_bandwidth_bytes_per_s is None
    for key in ("peak_ops_per_s.int8", "onchip_bytes", "efficiency", "op_overhead_s", "concurrent_ops", "clock_hz"):
        assert chip.sources[key].startswith(("derived from SCALE-Sim config", "assumption:")), key
    user = tmp_path / "user.cfg"
    user.write_text(cfgs["ws"].read_text().replace("InterfaceBandwidth: CALC", "InterfaceBandwidth: USER"))
    chip = load_chip(user)
    assert chip.dram_bandwidth_bytes_per_s == 10 * 1e9 == chip.array.dram_bandwidth_bytes_per_s
    assert chip.sources["dram_bandwidth_bytes_per_s"].startswith("derived from SCALE-Sim config")
    assert Chip.from_dict(json.loads(json.dumps(chip.to_dict()))) == chip
    with pytest.raises(ValueError, match=r"SCALE-Sim config .*nothere\.cfg: no such file"):
        load_chip(tmp_path / "nothere.cfg")


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
