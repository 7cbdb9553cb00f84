"""DRAM traffic: the closed forms and the fold-level window model against an exact replay of SCALE-Sim's read buffer.

``_replay`` rebuilds SCALE-Sim 3.0.0's demand streams (operand matrices, folds, skew, the order of its demand
matrices) and runs its CALC-mode read buffer over them address by address: windows of 50 x floor(words / 100)
distinct addresses, each fetched once per window. It is slow and exact; the model must agree within 5% (the bench
checks both against SCALE-Sim itself). The closed forms for layers beyond the fold model's limits are checked against
input words counted one by one (``_words``), against the fold model where both run, and on rows far too large for
any per-pixel work (in a subprocess with 2 GB of address space).
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chipfit.hw.sim.memory as memory
from chipfit.hw.sim.memory import (
    LayerTooLargeError,
    filter_reads,
    ifmap_reads,
    repeat_block,
    repeat_tiles,
    window_words,
)
from chipfit.hw.sim.simulate import simulate
from chipfit.hw.sim.topology import read_topology, scalesim_out
from chipfit.hw.sim.workload import SimLayer


def _operands(h, w, c, r, s, n, st):
    e, f = scalesim_out(h, r, st), scalesim_out(w, s, st)
    i = np.arange(e * f)[:, None]
    j = np.arange(r * s * c)[None, :]
    oy, ox = np.divmod(i, f)
    fy, rest = np.divmod(j, s * c)
    fx, ch = np.divmod(rest, c)
    y, x = oy * st + fy, ox * st + fx
    ifm = np.where((y < h) & (x < w), (y * w + x) * c + ch, -1)
    flt = np.arange(n)[None, :] * (r * s * c) + np.arange(r * s * c)[:, None] + 10**7
    return ifm, flt


def _skewed(block):
    t, lanes = block.shape
    key = ((np.arange(t)[:, None] + np.arange(lanes)[None, :]) * lanes + np.arange(lanes)[None, :]).ravel()
    return block.ravel()[np.argsort(key, kind="stable")]


def _streams(ifm, flt, df, ra, ca):
    m, k = ifm.shape
    n = flt.shape[1]
    si, sf = [], []
    if df == "ws":
        for fc in range(math.ceil(n / ca)):
            for fr in range(math.ceil(k / ra)):
                si.append(_skewed(ifm[:, fr * ra:(fr + 1) * ra]))
                sf.append(np.flip(flt[fr * ra:(fr + 1) * ra, fc * ca:(fc + 1) * ca], 0).ravel())
    elif df == "os":
        for fc in range(math.ceil(n / ca)):
            for fr in range(math.ceil(m / ra)):
                si.append(_skewed(ifm[fr * ra:(fr + 1) * ra, :].T))
                sf.append(_skewed(flt[:, fc * ca:(fc + 1) * ca]))
    else:
        for fc in range(math.ceil(m / ca)):
            for fr in range(math.ceil(k / ra)):
                si.append(np.flip(ifm[fc * ca:(fc + 1) * ca, fr * ra:(fr + 1) * ra].T, 0).ravel())
                sf.append(_skewed(flt[fr * ra:(fr + 1) * ra, :].T))
    a, b = np.concatenate(si), np.concatenate(sf)
    return a[a >= 0], b[b >= 0]


def _replay(stream, w):
    reads, window = 0, set()
    for addr in stream.tolist():
        if addr not in window:
            window.add(addr)
            reads += 1
            if len(window) == w:
                window = set()
    return reads


def test_repeat_block_cases():
    w = 100
    assert repeat_block(0, 30, 5, w) == (30, 30)  # fits: read once
    assert repeat_block(80, 30, 5, w) == (30 + 20, 30)  # the window closes inside the first pass: 20 re-read
    assert repeat_block(80, 30, 1, w) == (30, 10)
    assert repeat_block(7, 100, 3, w) == (300, 7)  # as large as the window: nothing survives
    assert repeat_block(0, 250, 2, w) == (500, 0)


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


def _random_layers(seed, count):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        r = rng.choice((1, 3, 3, 5))
        st = rng.choice((1, 1, 2))
        h, w = rng.randint(r + 2, 16), rng.randint(r + 2, 16)
        out.append((h, w, rng.choice((1, 3, 8, 16, 24)), r, r, rng.randint(4, 40), st))
    return out


@pytest.mark.parametrize("df", ["ws", "os", "is"])
def test_model_matches_exact_replay(df):
    ra, ca, sram = 8, 5, 2048  # windows of 1,000 words: most of these layers overflow them
    w = window_words(sram, 8)
    worst = 0.0
    for h, wd, c, r, s, n, st in _random_layers(1, 10):
        ifm, flt = _operands(h, wd, c, r, s, n, st)
        si, sf = _streams(ifm, flt, df, ra, ca)
        layer = SimLayer("x", "conv", in_h=h, in_w=wd, in_c=c, out_h=scalesim_out(h, r, st),
                         out_w=scalesim_out(wd, s, st), filt_h=r, filt_w=s, num_filters=n, stride=(st, st))
        m, k = ifm.shape
        assert filter_reads(df, m, k, n, ra, ca, w) == _replay(sf, w)  # exact
        exact = _replay(si, w)
        worst = max(worst, abs(ifmap_reads(layer, df, ra, ca, w, n) / exact - 1))
    assert worst < 0.05


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


# --- closed forms: filters ------------------------------------------------------------------------------------------


def test_repeat_tiles_is_repeat_block_in_a_loop():
    rng = random.Random(3)
    for _ in range(3000):
        w = rng.choice((0, 1, 7, 50, 100, 1000))
        d, passes, tiles = rng.randint(0, 300), rng.randint(0, 4), rng.randint(0, 60)
        u0 = rng.randint(0, max(w - 1, 0))
        reads, u = 0, u0
        for _ in range(tiles):
            r, u = repeat_block(u, d, passes, w)
            reads += r
        assert repeat_tiles(u0, d, passes, w, tiles) == (reads, u), (u0, d, passes, w, tiles)


def test_os_filter_reads_in_closed_form():
    # 3 N-tiles of 4 x 5 = 20 words and a last of 4 x 2, each streamed ceil(9 / 4) = 3 times through windows of 50:
    # tiles 1 and 2 read 20 each (u 40); tile 3 closes the window, and its next pass re-reads the 10 words it read
    # before the close (u 20); the last tile (8 words) stays in the window: 20 + 20 + 30 + 8
    assert filter_reads("os", 9, 4, 17, 4, 5, 50) == 78
    assert filter_reads("os", 10**9, 10**9, 10**9, 32, 32, 50 * 655) == 10**18 * math.ceil(10**9 / 32)


# --- closed forms: input feature maps -----------------------------------------------------------------------------


def _conv(h, w, c, r, s, st=(1, 1), pad=(0, 0), dil=(1, 1), n=8, name="x"):
    e = (h + 2 * pad[0] - dil[0] * (r - 1) - 1) // st[0] + 1
    f = (w + 2 * pad[1] - dil[1] * (s - 1) - 1) // st[1] + 1
    return SimLayer(name, "conv", in_h=h, in_w=w, in_c=c, out_h=e, out_w=f, filt_h=r, filt_w=s, num_filters=n,
                    stride=st, padding=pad, dilation=dil)


def _words(layer, k0, k1):
    """Distinct input words (pixel x channel) that reduction indices [k0, k1) read over all output pixels."""
    c = layer.in_c
    oy, ox = np.meshgrid(np.arange(layer.out_h), np.arange(layer.out_w), indexing="ij")
    got = set()
    for k in range(k0, k1):
        o, ch = divmod(k, c)
        fy, fx = divmod(o, layer.filt_w)
        y = oy * layer.stride[0] + fy * layer.dilation[0] - layer.padding[0]
        x = ox * layer.stride[1] + fx * layer.dilation[1] - layer.padding[1]
        ok = (y >= 0) & (y < layer.in_h) & (x >= 0) & (x < layer.in_w)
        got.update(((y[ok] * layer.in_w + x[ok]) * c + ch).tolist())
    return len(got)


def _random_convs(seed, count):
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        r, s = rng.choice((1, 2, 3, 5)), rng.choice((1, 2, 3))
        st, dil = (rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1, 2), rng.randint(1, 2))
        pad = (rng.randint(0, r), rng.randint(0, s))
        layer = _conv(rng.randint(1, 12), rng.randint(1, 12), rng.choice((1, 2, 3, 5, 8, 40)), r, s, st, pad, dil)
        if layer.out_h >= 1 and layer.out_w >= 1:
            out.append(layer)
    return out


def test_input_that_fits_the_window_is_read_once():
    # the closed-form footprint (padding dropped, strides and dilations skipping pixels) against a pixel count
    for layer in _random_convs(5, 300):
        want = _words(layer, 0, layer.filt_h * layer.filt_w * layer.in_c)
        for df in ("ws", "os", "is"):
            assert ifmap_reads(layer, df, 8, 8, 10**6, 16) == want


@pytest.mark.parametrize("rows", [4, 8, 16])
def test_ws_closed_form_reads_every_fold_footprint(monkeypatch, rows):
    # beyond the limits, ws with every reduction fold larger than the window reads each fold's distinct words per
    # N-tile (4 N-tiles here); windows of one word, so that every fold is larger
    monkeypatch.setattr(memory, "MAX_FOLD_WORK", 0)
    checked = 0
    for layer in _random_convs(7, 150):
        k = layer.filt_h * layer.filt_w * layer.in_c
        folds = [_words(layer, k0, min(k, k0 + rows)) for k0 in range(0, k, rows)]
        if min(folds) < 2 or sum(folds) < 2:
            continue
        assert ifmap_reads(layer, "ws", rows, 8, 1, 32) == 4 * sum(folds)
        checked += 1
    assert checked > 100


def test_disjoint_windows_closed_form_reads_each_word_once_a_pass(monkeypatch):
    monkeypatch.setattr(memory, "MAX_FOLD_WORK", 0)
    patchify = _conv(30, 21, 3, 4, 4, st=(4, 4), pad=(1, 0))  # stride = kernel: each input pixel in one window
    distinct = _words(patchify, 0, 4 * 4 * 3)
    assert distinct == 30 * 20 * 3  # every row (the first window starts on the padding row), columns 0-19
    gemm = SimLayer("g", "gemm", m=300, k=70, n=40)
    for layer, words in ((patchify, distinct), (gemm, 300 * 70)):
        assert ifmap_reads(layer, "is", 8, 8, 100, 40) == words
        assert ifmap_reads(layer, "ws", 8, 8, 100, 40) == 5 * words  # ceil(40 / 8) N-tiles
        assert ifmap_reads(layer, "os", 8, 8, 100, 40) == 5 * words


def test_closed_forms_agree_with_the_fold_model_where_both_run(monkeypatch):
    # the closed forms leave out only the fold model's window-boundary effects (where inside a slice a window
    # closes, and the rounding of it): within 1% on layers the fold model still takes
    cases = [(SimLayer("g", "gemm", m=700, k=300, n=50), df) for df in ("ws", "os", "is")]
    cases += [(_conv(40, 40, 16, 1, 1, st=(2, 2)), df) for df in ("os", "is")]
    cases += [(_conv(24, 40, 8, 4, 4, st=(4, 4)), "is")]
    cases += [(_conv(48, 48, 16, 3, 3, pad=(1, 1)), "ws"), (_conv(40, 40, 5, 5, 5, st=(2, 1)), "ws")]
    for layer, df in cases:
        fold = ifmap_reads(layer, df, 8, 8, 1000, 50)
        with monkeypatch.context() as m:
            m.setattr(memory, "MAX_FOLD_WORK", 0)
            closed = ifmap_reads(layer, df, 8, 8, 1000, 50)
        assert closed == pytest.approx(fold, rel=0.01), (layer, df)


def test_a_layer_beyond_the_limits_without_a_closed_form_is_refused(monkeypatch):
    monkeypatch.setattr(memory, "MAX_FOLD_WORK", 0)
    layer = _conv(48, 48, 16, 3, 3, pad=(1, 1), name="stage2.conv")
    for df in ("os", "is"):  # overlapping 3x3 windows: folds share input pixels, no closed form
        with pytest.raises(LayerTooLargeError, match=r"layer 'stage2.conv' is too large for the .* limits are"):
            ifmap_reads(layer, df, 8, 8, 1000, 50)
    assert issubclass(LayerTooLargeError, ValueError)


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
