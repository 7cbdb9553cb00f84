"""Chip profiles: every built-in loads with a source for every number; bad files get precise messages.

The array sections (the simulator's view of a chip) are tested with the simulator, in tests/hw/sim/test_arch.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from chipfit.hw import (
    DTYPES,
    HOROWITZ_45NM,
    KINDS,
    Chip,
    deprecated_name,
    list_chips,
    load_chip,
    load_target,
    parse_chip,
    user_chip_dir,
)
from chipfit.hw.chip import BUILTIN_DIR

REQUIRED = ["tpu-v1", "eyeriss-v1", "diannao", "dadiannao", "shidiannao", "jetson-tx2", "cortex-a76", "myriad-x",
            "a100", "journey-3", "host", "edge-npu"]
SIMULATED = ["dadiannao", "diannao", "edge-npu", "eyeriss-v1", "tpu-v1"]  # the chips with an array section
BUILTINS = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _cited_numbers(node, prefix=""):
    """(path, value, source) of every {value, source} leaf of a to_dict() tree."""
    if isinstance(node, dict) and set(node) == {"value", "source"}:
        yield prefix, node["value"], node["source"]
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _cited_numbers(v, f"{prefix}.{k}" if prefix else k)


def test_required_profiles_ship():
    assert set(REQUIRED) <= set(list_chips())
    assert set(BUILTINS) == set(list_chips())  # the user folder is empty here (conftest)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_profile_is_complete_and_cited(name):
    raw = yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text())
    chip = load_chip(name)
    assert chip.name == name and chip.kind in KINDS and chip.description
    assert 0 < chip.efficiency <= 1 and chip.onchip_bytes > 0 and chip.peak_ops_per_s
    assert set(chip.peak_ops_per_s) <= set(DTYPES)
    assert all(v > 0 for v in chip.peak_ops_per_s.values())
    # every number in the file is cited, and every number of the model (defaults included) has a source
    leaves = list(_cited_numbers(raw))
    assert leaves and all(isinstance(src, str) and src.strip() for _, _, src in leaves)
    tree = list(_cited_numbers(chip.to_dict()))
    assert len(tree) >= len(leaves)
    for path, value, src in tree:
        assert value is not None and src.strip(), f"{name}: {path} has no source"
    for path, _, src in leaves:  # the array's sources are its own (chip.array.sources, relative to the section)
        sources = chip.array.sources if path.startswith("array.") else chip.sources
        assert sources[path.removeprefix("array.")] == src.strip(), path
    assert (chip.array is not None) == (name in SIMULATED) == ("array" in raw)
    # a field set to null is written as null in the file, never as a number without a source
    for key in ("dram_bandwidth_bytes_per_s", "sram_bandwidth_bytes_per_s", "clock_hz", "power_w"):
        assert (getattr(chip, key) is None) == (raw.get(key) is None)


def test_peaks_follow_from_the_array_sizes():
    assert math.isclose(load_chip("tpu-v1").peak("int8"), 65536 * 2 * 700e6, rel_tol=0.01)
    assert math.isclose(load_chip("dadiannao").peak("int16"), 4608 * 2 * 606e6, rel_tol=0.01)
    assert math.isclose(load_chip("eyeriss-v1").peak("int16"), 168 * 2 * 200e6, rel_tol=0.01)
    assert math.isclose(load_chip("jetson-tx2").peak("fp16"), 256 * 2 * 2 * 1.30e9, rel_tol=0.01)
    assert math.isclose(load_chip("jetson-tx2").peak("fp32"), 256 * 2 * 1.30e9, rel_tol=0.01)
    assert math.isclose(load_chip("cortex-a76").peak("fp32"), 16 * 3.0e9, rel_tol=0.01)
    assert math.isclose(load_chip("a100").peak("fp16"), 108 * 1024 * 2 * 1.41e9, rel_tol=0.01)
    assert math.isclose(load_chip("shidiannao").peak("int16"), 64 * 2 * 1e9, rel_tol=0.01)
    # DianNao's published figure stays under what its 256 multipliers can do at 0.98 GHz
    assert load_chip("diannao").peak("int16") <= 256 * 2 * 0.98e9
    assert load_chip("edge-npu").peak("int8") == 32 * 32 * 2 * 800e6


@pytest.mark.parametrize("name", SIMULATED)
def test_roofline_numbers_agree_with_the_array(name):
    chip = load_chip(name)
    a = chip.array
    dtype = {8: "int8", 16: "int16"}[a.word_bits]
    bound = a.rows * a.cols * 2 * a.clock_hz  # what the modelled array can do at its own word width
    assert chip.peak(dtype) <= bound * 1.001  # published peaks are rounded (5.585 TOPS for 5.5849)
    if name != "diannao":  # DianNao's published peak counts adder-tree stalls; the others are the multiplier count
        assert chip.peak(dtype) == pytest.approx(bound, rel=1e-3)
    assert a.clock_hz == chip.clock_hz and a.dram_bandwidth_bytes_per_s == chip.dram_bandwidth_bytes_per_s
    assert a.energy == chip.energy and a.name == chip.name and a.path == chip.path


def test_edge_npu_roofline_is_derived_from_its_array():
    chip = load_chip("edge-npu")
    a = chip.array
    assert chip.onchip_bytes == a.ifmap_sram_bytes + a.filter_sram_bytes + a.ofmap_sram_bytes == 512 * 1024
    assert chip.sources["peak_ops_per_s.int8"].startswith("derived")
    assert chip.sources["onchip_bytes"].startswith("derived")
    for key in ("efficiency", "op_overhead_s", "dram_bandwidth_bytes_per_s", "clock_hz"):
        assert chip.sources[key].startswith("assumption:"), key


def test_only_supported_dtypes_are_given():
    assert set(load_chip("tpu-v1").peak_ops_per_s) == {"int8"}
    for name in ("eyeriss-v1", "diannao", "dadiannao", "shidiannao"):
        assert set(load_chip(name).peak_ops_per_s) == {"int16"}
    assert "tf32" not in load_chip("a100").peak_ops_per_s


def test_chips_without_dram():
    for name in ("dadiannao", "shidiannao"):
        chip = load_chip(name)
        assert chip.dram_bandwidth_bytes_per_s is None and chip.ridge(chip.best_dtype()) is None
    tpu = load_chip("tpu-v1")
    assert tpu.ridge("int8") == pytest.approx(tpu.peak("int8") * tpu.efficiency / tpu.dram_bandwidth_bytes_per_s)


def test_peak_of_missing_dtype_names_the_supported_ones():
    with pytest.raises(ValueError, match="tpu-v1 has no fp32 peak; it supports int8"):
        load_chip("tpu-v1").peak("fp32")
    with pytest.raises(ValueError, match="it supports fp16, fp32"):
        load_chip("jetson-tx2").peak("int8")


def test_unknown_chip_suggests_close_names_and_the_list_command():
    with pytest.raises(ValueError, match=r"unknown chip 'jetson-tx'\. Did you mean: jetson-tx2.*chipfit hw list"):
        load_chip("jetson-tx")


def test_old_simulator_names_are_not_chips_but_the_error_names_the_new_one():
    assert deprecated_name("tpu-v1-like") == "tpu-v1" and deprecated_name("tpu-v1") is None
    with pytest.raises(ValueError, match=r"unknown chip 'eyeriss-like': .*use --hw eyeriss-v1"):
        load_chip("eyeriss-like")


def test_load_chip_takes_a_chip_and_load_target_is_the_same_door():
    chip = load_chip("tpu-v1")
    assert load_chip(chip) is chip
    assert load_target is load_chip


def test_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_chip(str(tmp_path / "nothere.yaml"))


@pytest.mark.parametrize("name", BUILTINS)
def test_to_dict_round_trips_through_json(name):
    chip = load_chip(name)
    again = Chip.from_dict(json.loads(json.dumps(chip.to_dict())))
    assert again == chip


def test_horowitz_defaults():
    e = HOROWITZ_45NM
    assert e.mac_pj["int8"] == pytest.approx(0.2 + 0.03)
    assert e.mac_pj["int32"] == pytest.approx(3.1 + 0.1)
    assert e.mac_pj["fp16"] == pytest.approx(1.1 + 0.4)
    assert e.mac_pj["fp32"] == pytest.approx(3.7 + 0.9)
    assert e.add_pj["int8"] == 0.03 and e.add_pj["fp32"] == 0.9
    assert e.sram_pj_per_byte == pytest.approx(100 / 8) and e.dram_pj_per_byte == pytest.approx(640 / 4)
    # interpolated widths sit between their neighbours
    assert e.mac_pj["int4"] < e.mac_pj["int8"] < e.mac_pj["int16"] < e.mac_pj["int32"]
    assert e.add_pj["int8"] < e.add_pj["int16"] < e.add_pj["int32"]


# --- user files ---------------------------------------------------------------------------------------------------

GOOD = {
    "name": "mychip",
    "peak_ops_per_s": {"int8": {"value": 4e12, "source": "datasheet"}},
    "dram_bandwidth_bytes_per_s": {"value": 25.6e9, "source": "datasheet"},
    "onchip_bytes": {"value": 1048576, "source": "datasheet"},
    "efficiency": {"value": 0.5, "source": "assumption: half"},
}


def _good():
    return json.loads(json.dumps(GOOD))


def _write(tmp_path: Path, data=None, text=None, name="mychip.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text if text is not None else yaml.safe_dump(data))
    return p


def test_a_minimal_user_file_loads_with_defaults(tmp_path):
    chip = load_chip(_write(tmp_path, GOOD))
    assert chip.peak("int8") == 4e12 and chip.kind == "unspecified"
    assert chip.op_overhead_s == 0 and chip.concurrent_ops is False and chip.clock_hz is None
    assert chip.energy == HOROWITZ_45NM
    assert chip.sources["energy.mac_pj.int8"].startswith("Horowitz ISSCC 2014")
    assert chip.sources["op_overhead_s"].startswith("default")
    assert chip.path == str(tmp_path / "mychip.yaml")


def test_energy_entries_override_only_what_they_name(tmp_path):
    data = _good()
    data["energy"] = {"mac_pj": {"int8": {"value": 0.1, "source": "our 7 nm figure"}},
                      "dram_pj_per_byte": {"value": 20, "source": "LPDDR5 figure"}}
    chip = load_chip(_write(tmp_path, data))
    assert chip.energy.mac_pj["int8"] == 0.1 and chip.sources["energy.mac_pj.int8"] == "our 7 nm figure"
    assert chip.energy.mac_pj["fp32"] == HOROWITZ_45NM.mac_pj["fp32"]
    assert chip.energy.dram_pj_per_byte == 20 and chip.energy.sram_pj_per_byte == HOROWITZ_45NM.sram_pj_per_byte


def test_numbers_yaml_reads_as_strings_are_accepted(tmp_path):
    # YAML 1.1 reads 1e12 (no dot) and 1.5e12 (no sign in the exponent) as strings
    text = yaml.safe_dump(GOOD).replace("4000000000000.0", "1e12").replace("25600000000.0", "1.5e9")
    assert yaml.safe_load(text)["peak_ops_per_s"]["int8"]["value"] == "1e12"
    chip = load_chip(_write(tmp_path, text=text))
    assert chip.peak("int8") == 1e12 and chip.dram_bandwidth_bytes_per_s == 1.5e9


def test_no_array_or_a_null_one_means_nothing_to_simulate(tmp_path):
    assert load_chip(_write(tmp_path, GOOD)).array is None
    chip = load_chip(_write(tmp_path, dict(_good(), array=None)))
    assert chip.array is None and chip.to_dict()["array"] is None


def test_null_dram_means_no_dram(tmp_path):
    chip = load_chip(_write(tmp_path, dict(_good(), dram_bandwidth_bytes_per_s=None)))
    assert chip.dram_bandwidth_bytes_per_s is None


def _set(path: str, value):
    def mutate(d):
        *parents, last = path.split(".")
        node = d
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


def _drop(key: str):
    return lambda d: d.pop(key)


CITED = r"\{value: <number>, source: <text>\}"
BAD = {
    "missing field": (_drop("onchip_bytes"), r"missing required field 'onchip_bytes': it must be \{value: <bytes>"),
    "missing peaks": (_drop("peak_ops_per_s"), r"missing required field 'peak_ops_per_s': it must be a mapping from "
                                               r"dtype \(fp32, fp16"),
    "missing dram": (_drop("dram_bandwidth_bytes_per_s"), r"missing required field 'dram_bandwidth_bytes_per_s': "
                                                          r"it must be .*or null"),
    "empty peaks": (_set("peak_ops_per_s", {}), r"field 'peak_ops_per_s' must be a mapping from dtype .* at least one"),
    "string number": (_set("peak_ops_per_s.int8.value", "fast"),
                      r"field 'peak_ops_per_s\.int8\.value' must be a positive number \(a float such as 1\.5e12\), "
                      r"got str 'fast'"),
    "list number": (_set("onchip_bytes.value", [1, 2]), r"field 'onchip_bytes\.value' must be a positive number"),
    "bool number": (_set("onchip_bytes.value", True), r"field 'onchip_bytes\.value' must be a positive number"),
    "nan": (_set("onchip_bytes.value", "nan"), r"field 'onchip_bytes\.value' must be a positive number, finite"),
    "bare number": (_set("onchip_bytes", 1048576), r"field 'onchip_bytes' is a bare value \(1048576\) without a "
                                                   rf"source; it must be {CITED}: add .*source: \"assumption"),
    "bare peak": (_set("peak_ops_per_s.int8", 4e12), r"field 'peak_ops_per_s\.int8' is a bare value .* must be "
                                                     + CITED),
    "no source": (_set("peak_ops_per_s.int8", {"value": 1e12}), r"field 'peak_ops_per_s\.int8\.source' must be a "
                                                               r"non-empty string"),
    "blank source": (_set("efficiency.source", "  "), r"field 'efficiency\.source' must be a non-empty string"),
    "no value": (_set("efficiency", {"source": "x"}), r"field 'efficiency\.value' is missing; it must be <number>"),
    "typo in value": (_set("efficiency", {"valeu": 0.5, "source": "x"}),
                      r"field 'efficiency' has unknown key 'valeu' \(did you mean 'value'\?\); it must be " + CITED),
    "unknown key": (_set("onchip_bytse", 1), r"unknown field 'onchip_bytse' \(did you mean 'onchip_bytes'\?\); "
                                             r"fields are name, description"),
    "unknown dtype": (_set("peak_ops_per_s.int9", {"value": 1, "source": "x"}),
                      r"field 'peak_ops_per_s' has unknown dtype 'int9' \(did you mean 'int8'\?\); dtypes are fp32"),
    "int32 peak": (_set("peak_ops_per_s.int32", {"value": 1, "source": "x"}), r"unknown dtype 'int32'"),
    "negative bandwidth": (_set("dram_bandwidth_bytes_per_s.value", -1),
                           r"field 'dram_bandwidth_bytes_per_s\.value' must be a positive number, got int -1"),
    "zero peak": (_set("peak_ops_per_s.int8.value", 0), r"field 'peak_ops_per_s\.int8\.value' must be a positive "
                                                        r"number, got int 0"),
    "negative overhead": (_set("op_overhead_s", {"value": -1e-6, "source": "x"}),
                          r"field 'op_overhead_s\.value' must be a number >= 0"),
    "efficiency above 1": (_set("efficiency.value", 1.5), r"field 'efficiency\.value' must be a number in \(0, 1\], "
                                                          r"got float 1\.5"),
    "efficiency zero": (_set("efficiency.value", 0), r"field 'efficiency\.value' must be a number in \(0, 1\]"),
    "bare flag": (_set("concurrent_ops", True), r"field 'concurrent_ops' is a bare value \(True\) without a source; "
                                                r"it must be \{value: true or false"),
    "string flag": (_set("concurrent_ops", {"value": "yes", "source": "x"}),
                    r"field 'concurrent_ops\.value' must be true or false, got str 'yes'"),
    "bad kind": (_set("kind", "tpu"), r"field 'kind' must be one of asic, gpu, cpu, vpu, npu"),
    "name not text": (_set("name", 3), r"field 'name' must be a non-empty string, got int 3"),
    "energy typo": (_set("energy", {"mac": {}}), r"field 'energy' has unknown key 'mac' \(did you mean 'mac_pj'\?\)"),
    "bare energy": (_set("energy", {"mac_pj": {"int8": 0.2}}), r"field 'energy\.mac_pj\.int8' is a bare value"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_name_the_file_the_field_and_the_type(tmp_path, case):
    mutate, pattern = BAD[case]
    data = _good()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=pattern) as e:
        load_chip(path)
    assert str(e.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("name: [unclosed\npeak: 1", r"not valid YAML \(line 2, column \d+\)"),
        ("name: a\n  bad: indent", r"not valid YAML \(line 2, column \d+\): mapping values are not allowed"),
        ("name: a\nname: b\n", r"not valid YAML \(line 2, column 1\): key 'name' appears twice"),
        ("", r"the profile is empty; it must be a mapping of fields \(name, peak_ops_per_s"),
        ("- name: a\n", r"a chip profile must be a YAML mapping of fields, got list"),
    ],
)
def test_unreadable_yaml_is_wrapped_with_the_file_name(tmp_path, text, pattern):
    path = _write(tmp_path, text=text)
    with pytest.raises(ValueError, match=pattern) as e:
        load_chip(path)
    assert str(e.value).startswith(f"{path}: ")
    # no YAML exception chained under ours
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)


def test_parse_chip_without_a_file():
    with pytest.raises(ValueError, match=r"^<profile>: field 'efficiency\.value'"):
        parse_chip(dict(_good(), efficiency={"value": 2, "source": "x"}))
    assert parse_chip(_good()).path is None


def test_file_paths_load_whatever_their_suffix(tmp_path, monkeypatch):
    yml = _write(tmp_path, GOOD, name="other.yml")
    assert load_chip(str(yml)).name == "mychip"  # a file may carry any name
    _write(tmp_path, GOOD, name="profile")
    monkeypatch.chdir(tmp_path)
    assert load_chip("profile").path == "profile"  # an existing file wins over the name lookup


# --- the user folder ----------------------------------------------------------------------------------------------


def test_user_dir_follows_chipfit_home_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPFIT_HOME", str(tmp_path))
    assert user_chip_dir() == tmp_path / "hw"
    monkeypatch.delenv("CHIPFIT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_chip_dir() == tmp_path / "home" / ".config" / "chipfit" / "hw"


def test_user_folder_overrides_builtin_and_adds_chips(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPFIT_HOME", str(tmp_path))
    (tmp_path / "hw").mkdir()
    _write(tmp_path / "hw", dict(_good(), name="a100"), name="a100.yaml")
    _write(tmp_path / "hw", _good(), name="mychip.yml")
    assert load_chip("a100").peak_ops_per_s == {"int8": 4e12}
    assert load_chip("a100").path == str(tmp_path / "hw" / "a100.yaml")
    assert load_chip("mychip").name == "mychip"
    assert list_chips().count("a100") == 1 and "mychip" in list_chips() and "tpu-v1" in list_chips()


def test_a_user_file_must_carry_its_own_name(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPFIT_HOME", str(tmp_path))
    (tmp_path / "hw").mkdir()
    path = _write(tmp_path / "hw", _good(), name="edge.yaml")
    with pytest.raises(ValueError, match=rf"^{path}: field 'name' is 'mychip' but the file is named edge\.yaml"):
        load_chip("edge")


SCALESIM_USER = """[run_presets]
InterfaceBandwidth: USER

[architecture_presets]
ArrayHeight: 4
ArrayWidth: 3
IfmapSramSzkB: 1
FilterSramSzkB: 1
OfmapSramSzkB: 1
Dataflow: ws
Bandwidth: {bw}
"""


@pytest.mark.parametrize("bw", ["-4", "0", "0.0", "nan", "inf", "-inf", "1e400", "", "fast", "10,-1"])
def test_scalesim_bandwidth_must_be_a_positive_finite_number(tmp_path, bw):
    """Negative Bandwidth gave negative cycles, 0 a ZeroDivisionError in the simulator, NaN and inf an unclear
    message: all are refused, naming the file and the field, by the parser and by load_chip."""
    from chipfit.hw.array import parse_scalesim_cfg

    path = tmp_path / "user.cfg"
    path.write_text(SCALESIM_USER.format(bw=bw))
    pattern = (rf"^{path}: field 'Bandwidth' must be a positive finite number of words per cycle \(e\.g\. 10; a list "
               r"such as 10,20 takes the smallest\), got '")
    with pytest.raises(ValueError, match=pattern):
        parse_scalesim_cfg(path)
    with pytest.raises(ValueError, match=pattern):
        load_chip(path)


@pytest.mark.parametrize("bw,per_cycle", [("16", 16), ("0.5", 0.5), ("10, 20", 10)])
def test_scalesim_bandwidth_that_parses(tmp_path, bw, per_cycle):
    from chipfit.hw.array import parse_scalesim_cfg

    path = tmp_path / "user.cfg"
    path.write_text(SCALESIM_USER.format(bw=bw))
    assert parse_scalesim_cfg(path).dram_bytes_per_cycle == per_cycle


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("ArrayHeight: 4\n[a]\n", r"not a SCALE-Sim config: line 1: 'ArrayHeight: 4' comes before any \[section\] "
                                   r"header$"),
        ("[a]\nx: 1\njunk\nmore junk\n", r"not a SCALE-Sim config: line 3: cannot parse 'junk\\n' \(and 1 more "
                                          r"lines\); lines are '\[section\]' or 'Key: value'$"),
        ("[a]\nx: 1\nX: 2\n", r"not a SCALE-Sim config: line 3: field 'x' appears twice in section \[a\]$"),
        ("[a]\n[a]\n", r"not a SCALE-Sim config: line 2: section \[a\] appears twice$"),
        (SCALESIM_USER.format(bw=10).replace("ArrayWidth: 3", "ArrayWidth: 3%"),
         r"field 'ArrayWidth' must be a positive integer, got '3%'$"),
        (SCALESIM_USER.format(bw=10).replace("ArrayWidth: 3", f"ArrayWidth: {'9' * 400}"),
         r"field 'ArrayWidth' must be a positive integer, got '9{56}\.\.\. \(at most 2147483647\)$"),
    ],
)
def test_scalesim_cfg_structure_errors_are_one_line(tmp_path, text, pattern):
    """configparser's messages span several lines, and a '%' in a value was an interpolation error raised late,
    outside the parser's handler."""
    from chipfit.hw.array import parse_scalesim_cfg

    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern) as e:
        parse_scalesim_cfg(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
