"""chipfit.hw.space: accelerator spaces as data, points, building arrays, files with bad fields."""

from __future__ import annotations

import json
import random

import pytest

from chipfit.hw.sim import load_arch
from chipfit.hw.space import DIMS, HwPoint, HwSpace, HwSpaceError, chip_space, load_hw_space


def test_size_genes_and_mixed_radix_points():
    sp = HwSpace(name="t", rows=(8, 16), cols=(8,), dataflow=("ws", "os", "is"), sram_kb=(64, 128),
                 split=((50, 25, 25),), dram_gbps=(8,), sparsity=("dense",))
    assert sp.size() == 2 * 3 * 2
    assert [g for g, _ in sp.genes()] == ["rows", "dataflow", "sram_kb"]
    keys = [p.key() for p in sp.points()]
    assert len(set(keys)) == sp.size()
    assert sp.point(0).rows == 8 and sp.point(sp.size() - 1).rows == 16
    for i in range(sp.size()):  # the index read back from the point's choices, first dimension most significant
        enc, back = sp.encode(sp.point(i)), 0
        for d in DIMS:
            back = back * len(getattr(sp, d)) + enc[d]
        assert back == i
    with pytest.raises(HwSpaceError, match="outside"):
        sp.point(sp.size())


def test_build_splits_the_sram_and_keeps_the_base_chip():
    sp = HwSpace()
    p = HwPoint(64, 16, "os", 1024, (50, 25, 25), 8, 16, 1, "nm")
    a = sp.build(p)
    base = load_arch("edge-npu")
    assert (a.rows, a.cols, a.dataflow, a.word_bits) == (64, 16, "os", 8)
    assert (a.ifmap_sram_bytes, a.filter_sram_bytes, a.ofmap_sram_bytes) == (524288, 262144, 262144)
    assert a.dram_bandwidth_bytes_per_s == 16e9 and a.sparsity == ("nm",) and a.vector_lanes == 16
    assert a.clock_hz == base.clock_hz and a.energy == base.energy
    assert "searched" in a.sources["rows"]


def test_the_chip_space_rebuilds_the_chip_exactly():
    sp = chip_space("edge-npu")
    assert sp.size() == 1
    a, b = sp.build(sp.point(0)), load_arch("edge-npu")
    for f in ("rows", "cols", "dataflow", "ifmap_sram_bytes", "filter_sram_bytes", "ofmap_sram_bytes", "word_bits",
              "dram_bandwidth_bytes_per_s", "clock_hz", "vector_lanes", "sparsity", "energy"):
        assert getattr(a, f) == getattr(b, f), f


def test_neighbours_step_one_dimension():
    sp = HwSpace()
    p = sp.sample(random.Random(3))
    for q in sp.neighbours(p):
        diff = [d for d in DIMS if getattr(q, d) != getattr(p, d)]
        assert len(diff) == 1
        d = diff[0]
        opts = getattr(sp, d)
        assert abs(opts.index(getattr(q, d)) - opts.index(getattr(p, d))) == 1


def test_round_trips_through_a_file(tmp_path):
    sp = HwSpace(name="mine", rows=(16, 32), split=((40, 40, 20), (50, 25, 25)))
    path = tmp_path / "s.json"
    path.write_text(json.dumps(sp.to_dict()))
    assert load_hw_space(path) == sp
    y = tmp_path / "s.yaml"
    y.write_text("name: y\nrows: [16, 32]\ncols: 16\nsplit: ['50/25/25']\n")
    got = load_hw_space(y)
    assert got.rows == (16, 32) and got.cols == (16,) and got.split == ((50, 25, 25),)
    p = got.point(1)
    assert HwPoint.from_dict(json.loads(json.dumps(p.to_dict()))) == p


@pytest.mark.parametrize(("text", "message"), [
    ("rows: [16, -2]", r"rows\[1\]: a whole number >= 1"),
    ("dataflow: [ws, rs]", r"dataflow\[1\]: ws, os or is"),
    ("split: ['50/30/30']", r"split\[0\]: three positive percentages adding up to 100"),
    ("split: ['a/b']", r"split\[0\]: input/weight/output SRAM percentages"),
    ("sparsity: [dense, 2:4]", r"sparsity\[1\]: one of dense, nm, unstructured"),
    ("rows: []", "rows: a non-empty list"),
    ("rows: [8, 8]", "listed twice"),
    ("colz: [8]", "unknown field 'colz'"),
    ("node_nm: -7", "node_nm"),
    ("word_bits: [7]", r"word_bits\[0\]: 4, 8, 16 or 32"),
])
def test_bad_files_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(HwSpaceError, match=message) as e:
        load_hw_space(path)
    assert str(path) in str(e.value)


def test_unknown_names_and_points_outside():
    with pytest.raises(HwSpaceError, match="not a built-in"):
        load_hw_space("nosuch")
    with pytest.raises(HwSpaceError, match="not a choice"):
        HwSpace(rows=(8,)).encode(HwPoint(16, 8, "ws", 64, (50, 25, 25), 8, 8, 1, "dense"))
    assert load_hw_space("chip:edge-npu").size() == 1
