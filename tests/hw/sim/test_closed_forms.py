"""The closed forms (:mod:`chipfit.hw.sim.closed_forms`): filter reads against the window process block by block,
and for input feature maps beyond the fold model's limits against input words counted one by one (``_words``) and
against the fold model where both run.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import chipfit.hw.sim.memory as memory
from chipfit.hw.sim.closed_forms import filter_reads, repeat_block, repeat_tiles
from chipfit.hw.sim.memory import LayerTooLargeError, ifmap_reads
from chipfit.hw.sim.workload import SimLayer

# --- filters ----------------------------------------------------------------------------------------------------------


def test_repeat_block_cases():
    w = 100
    assert repeat_block(0, 30, 5, w) == (30, 30)  # fits: read once
    assert repeat_block(80, 30, 5, w) == (30 + 20, 30)  # the window closes inside the first pass: 20 re-read
    assert repeat_block(80, 30, 1, w) == (30, 10)
    assert repeat_block(7, 100, 3, w) == (300, 7)  # as large as the window: nothing survives
    assert repeat_block(0, 250, 2, w) == (500, 0)


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


# --- input feature maps -----------------------------------------------------------------------------------------------


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
