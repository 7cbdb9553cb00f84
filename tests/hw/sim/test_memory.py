"""DRAM traffic of a layer (:mod:`chipfit.hw.sim.memory`): read windows, hand-computed layers, and the limits of the
fold model on rows far too large for any per-pixel work (in a subprocess with 2 GB of address space).

The models behind it are tested in ``test_windows.py`` (the fold model) and ``test_closed_forms.py``.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest

from chipfit.hw.sim.memory import window_words
from chipfit.hw.sim.simulate import simulate
from chipfit.hw.sim.topology import read_topology
from chipfit.hw.sim.workload import SimLayer


def test_window_words_follow_scalesim_sets():
    assert window_words(1024, 8) == 50 * 10  # 1 kB: 100 sets of floor(1024 / 100) = 10 words, half active
    assert window_words(65536, 8) == 50 * 655
    assert window_words(65536, 16) == 50 * 327


def test_hand_layer_reads(scalesim_files):
    # layer c: 8x8x16 input (1,024 words) in a 1 kB buffer (windows of 500): ws and os read it once per N-tile
    # (ceil(4 / 3) = 2), is once; the filter (16 x 4) fits. SCALE-Sim reported 2048, 2048, 1024.
    topo, cfgs = scalesim_files
    for df, want in (("ws", 2048), ("os", 2048), ("is", 1024)):
        res = simulate(topo, cfgs[df])
        c = res.layers[2]
        assert c.detail["ifmap_dram_reads"] == want
        assert c.detail["filter_dram_reads"] == 64
    # and the small layers fit: every input read once (5 x 5 x 3 = 75, 6 x 6 x 2 = 72)
    assert [x.detail["ifmap_dram_reads"] for x in res.layers[:2]] == [75, 72]


def test_padding_is_not_read(tmp_path):
    # a padded 3x3 conv reads each real input pixel once (it fits), never the padding
    conv = SimLayer("p", "conv", in_h=10, in_w=10, in_c=4, out_h=10, out_w=10, filt_h=3, filt_w=3, num_filters=8,
                    padding=(1, 1))
    res = simulate([conv], "edge-npu")
    assert res.layers[0].detail["ifmap_dram_reads"] == 10 * 10 * 4


def test_topology_scalesim_output_size(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                 "Strides,\nx, 230, 230, 7, 7, 3, 64, 2,\n")
    x = read_topology(p)[0]
    assert (x.out_h, x.out_w) == (113, 113)  # ceil((230 - 7 + 2) / 2); a framework would give 112


_HUGE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from chipfit.hw.sim.memory import LayerTooLargeError
from chipfit.hw.sim.simulate import simulate
try:
    res = simulate(sys.argv[1], sys.argv[2], dataflow=sys.argv[3])
except LayerTooLargeError as e:
    print("refused:", e)
else:
    print("reads:", res.layers[0].detail["ifmap_dram_reads"], res.total["cycles"])
"""

_CFG = """[general]
run_name = huge
[run_presets]
InterfaceBandwidth: CALC
[architecture_presets]
ArrayHeight: 32
ArrayWidth: 32
IfmapSramSzkB: 64
FilterSramSzkB: 64
OfmapSramSzkB: 64
Dataflow: ws
"""


@pytest.mark.parametrize("df", ["ws", "os", "is"])
@pytest.mark.parametrize("row", ["gemm", "conv"])
def test_huge_topology_rows_finish_in_bounded_memory(tmp_path, row, df):
    # issue 14: a 1e9 x 1e9 x 1e9 GEMM hung and a 1e6 x 1e6 input map ran out of memory; now each finishes (or is
    # refused by name) in 2 GB of address space, well inside the subprocess timeout
    cfg = tmp_path / "a.cfg"
    cfg.write_text(_CFG)
    topo = tmp_path / "t.csv"
    if row == "gemm":
        topo.write_text("Layer, M, N, K,\nhuge_gemm, 1000000000, 1000000000, 1000000000,\n")
    else:
        topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                        "Strides,\nhuge_conv, 1000000, 1000000, 3, 3, 3, 64, 1,\n")
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(_HUGE), str(topo), str(cfg), df],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout.strip()
    if row == "gemm":  # windows never overlap: every word once per N-tile (ws, os) or once (is)
        passes = math.ceil(10**9 / 32) if df != "is" else 1
        assert out.startswith("reads: ") and float(out.split()[1]) == passes * 1e18
    elif df == "ws":  # one reduction fold (27 <= 32 rows) holding the whole input, read once per N-tile
        assert out.startswith("reads: ") and float(out.split()[1]) == 2 * 3 * 10**12
    else:
        assert out.startswith("refused: layer 'huge_conv' is too large for the"), out
