"""Chip profiles: every built-in loads with a source for every number; bad files get precise messages."""

from __future__ import annotations

import math

import pytest
import yaml

from chipfit.hw import list_chips, load_chip, parse_chip, user_chip_dir

REQUIRED = ["tpu-v1", "eyeriss-v1", "diannao", "dadiannao", "jetson-tx2", "cortex-a76", "myriad-x", "a100", "host"]


def test_required_profiles_ship():
    assert set(REQUIRED) <= set(list_chips())


@pytest.mark.parametrize("name", REQUIRED)
def test_every_number_has_a_source(name):
    chip = load_chip(name)
    numbers = {f"peak_ops_per_s.{d}": v for d, v in chip.peak_ops_per_s.items()}
    numbers.update({k: getattr(chip, k) for k in ("dram_bandwidth_bytes_per_s", "onchip_bytes", "efficiency",
                                                   "op_overhead_s", "clock_hz", "power_w")})
    for path, value in numbers.items():
        if value is not None:
            assert chip.sources.get(path, "").strip(), f"{name}: {path} has no source"
    assert 0 < chip.efficiency <= 1


def test_peaks_follow_from_the_array_sizes():
    assert math.isclose(load_chip("tpu-v1").peak("int8"), 65536 * 2 * 700e6, rel_tol=0.01)
    assert math.isclose(load_chip("dadiannao").peak("int16"), 4608 * 2 * 606e6, rel_tol=0.01)
    assert math.isclose(load_chip("eyeriss-v1").peak("int16"), 168 * 2 * 200e6, rel_tol=0.01)
    assert load_chip("dadiannao").dram_bandwidth_bytes_per_s is None  # whole model on chip


def test_peak_of_missing_dtype_names_the_supported_ones():
    with pytest.raises(ValueError, match="tpu-v1 has no fp32 peak; it supports int8"):
        load_chip("tpu-v1").peak("fp32")


def test_unknown_chip_suggests_close_names():
    with pytest.raises(ValueError, match="Did you mean: jetson-tx2"):
        load_chip("jetson-tx")


GOOD = {
    "name": "mychip",
    "peak_ops_per_s": {"int8": {"value": 4e12, "source": "datasheet"}},
    "dram_bandwidth_bytes_per_s": {"value": 25.6e9, "source": "datasheet"},
    "onchip_bytes": {"value": 1048576, "source": "datasheet"},
    "efficiency": {"value": 0.5, "source": "assumption: half"},
}


def _write(tmp_path, data, text=None):
    p = tmp_path / "mychip.yaml"
    p.write_text(text if text is not None else yaml.safe_dump(data))
    return p


def test_a_good_user_file_loads(tmp_path):
    chip = load_chip(_write(tmp_path, GOOD))
    assert chip.peak("int8") == 4e12 and chip.energy.mac_pj["int8"] == pytest.approx(0.23)


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (lambda d: d.pop("onchip_bytes"), r"missing required field 'onchip_bytes'"),
        (lambda d: d.update(efficiency={"value": "fast", "source": "x"}), r"'efficiency.value' must be a number"),
        (lambda d: d.update(onchip_bytes=1048576), r"'onchip_bytes' is a bare value .*source"),
        (lambda d: d.update(onchip_bytse=1), r"unknown field 'onchip_bytse' \(did you mean 'onchip_bytes'\?\)"),
        (lambda d: d.update(dram_bandwidth_bytes_per_s={"value": -1, "source": "x"}),
         r"'dram_bandwidth_bytes_per_s.value' must be a positive number"),
        (lambda d: d.update(efficiency={"value": 1.5, "source": "x"}), r"'efficiency.value' must be a fraction"),
        (lambda d: d.update(peak_ops_per_s={"int9": {"value": 1, "source": "x"}}), r"unknown dtype 'int9'"),
        (lambda d: d.update(peak_ops_per_s={"int8": {"value": 1e12}}), r"'peak_ops_per_s.int8.source' must be"),
        (lambda d: d.update(concurrent_ops="yes"), r"'concurrent_ops' must be true or false"),
    ],
)
def test_bad_files_name_the_field_and_type(tmp_path, mutate, pattern):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=pattern) as e:
        load_chip(path)
    assert str(path) in str(e.value)


def test_yaml_syntax_error_is_wrapped(tmp_path):
    path = _write(tmp_path, None, "name: [unclosed\npeak: 1")
    with pytest.raises(ValueError, match=r"not valid YAML \(line"):
        load_chip(path)


def test_numbers_written_without_a_dot_are_accepted():
    data = dict(GOOD, onchip_bytes={"value": "1e6", "source": "yaml reads 1e6 as a string"})
    assert parse_chip(data).onchip_bytes == 1e6


def test_user_folder_overrides_builtin(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPFIT_HOME", str(tmp_path))
    assert user_chip_dir() == tmp_path / "hw"
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "a100.yaml").write_text(yaml.safe_dump(dict(GOOD, name="a100")))
    assert load_chip("a100").peak_ops_per_s == {"int8": 4e12}
    assert "a100" in list_chips()
