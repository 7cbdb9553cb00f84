"""The cited-YAML reader shared by chip profiles and their array sections: paths in messages, sources, energy."""

from __future__ import annotations

import pytest

from chipfit.hw.cited import HOROWITZ_45NM, HOROWITZ_SOURCES, Reader, read_energy, read_yaml


def test_a_section_reader_names_the_full_path_and_keeps_short_source_keys():
    r = Reader("f.yaml", prefix="array.")
    assert r.integer("rows", {"value": 32, "source": "sheet"}) == 32 and r.sources == {"rows": "sheet"}
    with pytest.raises(ValueError, match=r"^f\.yaml: field 'array\.rows\.value' must be a positive integer, got "):
        r.integer("rows", {"value": 2.5, "source": "x"})
    with pytest.raises(ValueError, match=r"^f\.yaml: field 'array\.cols' is a bare value \(3\) without a source.*"
                                         r"e\.g\. cols: \{value: 3"):
        r.integer("cols", 3)
    with pytest.raises(ValueError, match=r"^f\.yaml: unknown field 'array\.rowz' \(did you mean 'rows'\?\)"):
        r.check_fields({"rowz": 1}, {"rows": (False, "x")})
    with pytest.raises(ValueError, match=r"^f\.yaml: missing required field 'array\.rows': it must be an integer"):
        r.check_fields({}, {"rows": (True, "an integer")})


def test_energy_over_a_base_table():
    r = Reader("f.yaml")
    e = read_energy(r, None)
    assert e == HOROWITZ_45NM and e.mac_pj is not HOROWITZ_45NM.mac_pj  # a copy, never the shared defaults
    assert r.sources == {f"energy.{k}": v for k, v in HOROWITZ_SOURCES.items()}
    r = Reader("f.yaml", prefix="array.")
    e2 = read_energy(r, {"sram_pj_per_byte": {"value": 2.5, "source": "small banks"}}, base=e, base_sources=None)
    assert e2.sram_pj_per_byte == 2.5 and e2.mac_pj == e.mac_pj and r.sources == {"energy.sram_pj_per_byte":
                                                                                     "small banks"}
    with pytest.raises(ValueError, match=r"field 'array\.energy\.mac_pj' has unknown dtype 'int9'"):
        read_energy(r, {"mac_pj": {"int9": {"value": 1, "source": "x"}}})


def test_read_yaml_rejects_duplicate_keys_and_names_the_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("a: 1\narray:\n  rows: 1\n  rows: 2\n")
    with pytest.raises(ValueError, match=r"x\.yaml: not valid YAML \(line 4, column 3\): key 'rows' appears twice"):
        read_yaml(p)
    with pytest.raises(ValueError, match=r"cannot read the target file"):
        read_yaml(tmp_path / "missing.yaml", "target file")


def test_yaml_problems_fuzzing_found_are_one_line_errors(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: a\npeak: b\x00c\n")  # a NUL: PyYAML's reader error spans two lines and has no mark
    with pytest.raises(ValueError, match=r"^.*x\.yaml: not valid YAML \(line 2, column 8\): character U\+0000 is not "
                                         r"allowed$"):
        read_yaml(p)
    p.write_text("? [a, b]\n: 1\n")  # a list as a key: the duplicate check hashed it, a TypeError
    with pytest.raises(ValueError, match=r"x\.yaml: not valid YAML \(line 1, column 3\): a list cannot be a key"):
        read_yaml(p)
    p.write_text("a: " + "[" * 1500 + "]" * 1500 + "\n")
    with pytest.raises(ValueError, match=r"x\.yaml: not valid YAML") as e:
        read_yaml(p)
    assert "\n" not in str(e.value)


def test_huge_integers_and_long_values_give_short_messages():
    r = Reader("f.yaml")
    with pytest.raises(ValueError, match=r"field 'rows\.value' must be a positive number, finite \(at most 1\.8e\+308"
                                         r"\), got int 1000"):
        r.number("rows", {"value": 10**400, "source": "x"})  # math.isfinite(10**400) raised OverflowError
    with pytest.raises(ValueError, match=r"field 'rows' is a bare value \('x{56}\.\.\.\) without a source") as e:
        r.number("rows", "x" * 5000)
    assert len(str(e.value)) < 300
    with pytest.raises(ValueError, match=r"unknown field 'y{37}\.\.\.'") as e:
        r.check_fields({"y" * 5000: 1}, {"rows": (False, "x")})
    assert len(str(e.value)) < 300
