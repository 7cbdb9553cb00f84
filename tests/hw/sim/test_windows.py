"""The fold model (:mod:`chipfit.hw.sim.windows`) against an exact replay of SCALE-Sim's read buffer.

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

from chipfit.hw.sim.closed_forms import filter_reads
from chipfit.hw.sim.memory import ifmap_reads, window_words
from chipfit.hw.sim.topology import scalesim_out
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
