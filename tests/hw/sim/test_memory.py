"""DRAM traffic: the closed forms and the fold-level window model against an exact replay of SCALE-Sim's read buffer.

``_replay`` rebuilds SCALE-Sim 3.0.0's demand streams (operand matrices, folds, skew, the order of its demand
matrices) and runs its CALC-mode read buffer over them address by address: windows of 50 x floor(words / 100)
distinct addresses, each fetched once per window. It is slow and exact; the model must agree within 5% (the bench
checks both against SCALE-Sim itself).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from chipfit.hw.sim.layers import SimLayer, read_topology, scalesim_out
from chipfit.hw.sim.memory import filter_reads, ifmap_reads, repeat_block, window_words
from chipfit.hw.sim.simulate import simulate


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
