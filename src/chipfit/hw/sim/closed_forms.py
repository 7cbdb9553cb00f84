"""Closed forms of SCALE-Sim's read-buffer DRAM reads: filters, and input feature maps too large for the fold model.

- **Filters** are read in blocks that repeat identically (os: each N-tile of the filter matrix once per M-fold; is:
  the whole matrix once per M-fold; ws: every weight once), so the window process has a closed form per block
  (:func:`repeat_block`) and over a run of equal blocks (:func:`repeat_tiles`), exact for SCALE-Sim's streams.
- **Input pixels**: the input pixels some output reads, over a whole layer or a range of filter offsets, are counted
  from progressions (:class:`Lattice`), at no cost per pixel. An input that fits one window is read once.
- **Large inputs** (:func:`large_layer_reads`, beyond the fold model's limits): filter windows that never overlap (a
  GEMM, a 1x1 or patchify convolution) put each input word in one fold only, read once per pass; in ws, when every
  reduction fold is larger than a window, each fold reads its footprint once per pass. These are the fold model's
  counts less its window-boundary effects (where in a slice a window closes, and the rounding of it): a few words per
  window closed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from chipfit.hw.sim.workload import SimLayer

MAX_CLOSED_FORM_FOLDS = 20_000  # reduction folds summed one by one by the ws closed form


# --- filters ----------------------------------------------------------------------------------------------------------


def repeat_block(u: int, d: int, passes: int, w: int) -> tuple[int, int]:
    """DRAM reads of a block of ``d`` distinct addresses, no address repeated within it, streamed ``passes`` times in
    the same order, starting with ``u`` addresses already in the current window of ``w``. Returns (reads, new u).

    d >= w: nothing survives to the next pass, every pass reads d. d < w: the first pass reads d; if the window
    closed during it (u + d >= w), the next pass re-reads the w - u addresses that came before the close; after
    that the block sits in one window and later passes hit.
    """
    if passes <= 0 or d <= 0:
        return 0, u
    if w <= 0:
        return passes * d, 0
    if d >= w:
        return passes * d, (u + passes * d) % w
    if u + d < w:
        return d, u + d
    if passes == 1:
        return d, u + d - w
    return d + (w - u), d


def repeat_tiles(u: int, d: int, passes: int, w: int, tiles: int) -> tuple[int, int]:
    """:func:`repeat_block` applied to ``tiles`` blocks of ``d`` distinct addresses in a row (fresh addresses each
    block), in closed form. Returns (reads, new u)."""
    if tiles <= 0 or passes <= 0 or d <= 0:
        return 0, u
    if w <= 0:
        return tiles * passes * d, 0
    if d >= w:
        return tiles * passes * d, (u + tiles * passes * d) % w
    if passes == 1:
        return tiles * d, (u + tiles * d) % w
    # d < w read twice or more: u grows by d a block until a block closes the window (reading d + w - u), after
    # which u = d and the same cycle of blocks repeats, each cycle reading w
    first = max(0, -((u + d - w) // d))  # blocks before the first close
    if tiles <= first:
        return tiles * d, u + tiles * d
    reads = first * d + d + w - (u + first * d)
    rest = tiles - first - 1
    cycle = max(0, -((2 * d - w) // d)) + 1
    full, left = divmod(rest, cycle)
    return reads + full * w + left * d, d + left * d


def filter_reads(dataflow: str, m: int, k: int, n: int, rows: int, cols: int, w: int) -> int:
    """DRAM reads of one product's filter (K x N) in SCALE-Sim's read buffer, exact for its streams."""
    if dataflow == "ws":
        return k * n
    if dataflow == "is":
        return repeat_block(0, k * n, math.ceil(m / cols), w)[0]
    passes = math.ceil(m / rows)
    tiles = math.ceil(n / cols)  # N-tiles of the filter matrix: all but the last hold `cols` columns
    reads, u = repeat_tiles(0, k * cols, passes, w, tiles - 1)
    return reads + repeat_block(u, k * (n - (tiles - 1) * cols), passes, w)[0]


# --- closed forms over the input pixels -------------------------------------------------------------------------------
#
# Along one axis, the input coordinates that all outputs read at one filter index form an arithmetic progression whose
# step is the stride. Sets of such coordinates are kept as {residue: sorted disjoint [lo, hi) intervals of quotients}
# (coordinate = residue + quotient x stride), so that their unions, intersections and sizes cost nothing per pixel.

_Runs = dict[int, list[tuple[int, int]]]


def _progression(size: int, out: int, j: int, stride: int, pad: int, dil: int) -> tuple[int, int]:
    """(first coordinate, count) of the input coordinates (padding dropped) that outputs 0..out-1 read at filter
    index ``j``; consecutive ones are ``stride`` apart."""
    off = j * dil - pad
    lo = max(0, -(off // stride))  # first output whose coordinate is not padding
    hi = min(out - 1, (size - 1 - off) // stride)
    if hi < lo:
        return 0, 0
    return lo * stride + off, hi - lo + 1


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _runs(progressions: Iterable[tuple[int, int]], step: int) -> _Runs:
    by: dict[int, list[tuple[int, int]]] = {}
    for first, count in progressions:
        if count > 0:
            q, r = divmod(first, step)
            by.setdefault(r, []).append((q, q + count))
    return {r: _merged(iv) for r, iv in by.items()}


def _size(a: _Runs) -> int:
    return sum(hi - lo for iv in a.values() for lo, hi in iv)


def _union(a: _Runs, b: _Runs) -> _Runs:
    return {r: _merged(a.get(r, []) + b.get(r, [])) for r in a.keys() | b.keys()}


def _intersection(a: _Runs, b: _Runs) -> _Runs:
    out: _Runs = {}
    for r in a.keys() & b.keys():
        x, y, got, i, j = a[r], b[r], [], 0, 0
        while i < len(x) and j < len(y):
            lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
            if lo < hi:
                got.append((lo, hi))
            if x[i][1] < y[j][1]:
                i += 1
            else:
                j += 1
        out[r] = got
    return out


def _minus(a: _Runs, b: _Runs) -> _Runs:
    out: _Runs = {}
    for r, x in a.items():
        cuts, got = b.get(r, []), []
        for lo, hi in x:
            for clo, chi in cuts:
                if chi <= lo or clo >= hi:
                    continue
                if clo > lo:
                    got.append((lo, clo))
                lo = max(lo, chi)
                if lo >= hi:
                    break
            if lo < hi:
                got.append((lo, hi))
        out[r] = got
    return out


class Lattice:
    """Closed-form counts of the input pixels a convolution's outputs read, over all its output pixels: at filter
    offset (fy, fx) they are the product Y(fy) x X(fx) of two progressions."""

    def __init__(self, view: SimLayer):
        self.h, self.w = view.in_h, view.in_w
        self.e, self.f = view.out_h, view.out_w
        self.r, self.s = view.filt_h, view.filt_w
        (self.sh, self.sw), (self.ph, self.pw), (self.dh, self.dw) = view.stride, view.padding, view.dilation
        # every input pixel read at one (output pixel, offset) at most: the filter windows never overlap
        self.disjoint = all(k == 1 or out == 1 or st >= (k - 1) * d + 1 for k, out, st, d in
                            ((self.r, self.e, self.sh, self.dh), (self.s, self.f, self.sw, self.dw)))

    def _y(self, fy: int) -> tuple[int, int]:
        return _progression(self.h, self.e, fy, self.sh, self.ph, self.dh)

    def _x(self, fx: int) -> tuple[int, int]:
        return _progression(self.w, self.f, fx, self.sw, self.pw, self.dw)

    def _ys(self, lo: int, hi: int) -> _Runs:
        return _runs(map(self._y, range(lo, hi + 1)), self.sh)

    def _xs(self, lo: int, hi: int) -> _Runs:
        return _runs(map(self._x, range(lo, hi + 1)), self.sw)

    def footprint(self) -> int:
        """Input pixels read by the whole layer."""
        return _size(self._ys(0, self.r - 1)) * _size(self._xs(0, self.s - 1))

    def offsets_footprint(self, oa: int, ob: int) -> int:
        """Input pixels read at the filter offsets oa..ob (raster order, o = fy x S + fx): the first filter row from
        its column of oa on, whole rows, the last row up to its column of ob."""
        fya, fxa = divmod(oa, self.s)
        fyb, fxb = divmod(ob, self.s)
        if fya == fyb:
            if fxa == fxb:
                return self._y(fya)[1] * self._x(fxa)[1]
            return self._y(fya)[1] * _size(self._xs(fxa, fxb))
        first, last, whole = self._xs(fxa, self.s - 1), self._xs(0, fxb), self._xs(0, self.s - 1)
        ya, yl = self._ys(fya, fya), self._ys(fyb, fyb)
        ym = self._ys(fya + 1, fyb - 1) if fyb - fya > 1 else {}
        # an input row read at a middle filter row takes every column; others take the columns of the end rows
        return (_size(ym) * _size(whole) + _size(_minus(_intersection(ya, yl), ym)) * _size(_union(first, last))
                + _size(_minus(_minus(ya, yl), ym)) * _size(first) + _size(_minus(_minus(yl, ya), ym)) * _size(last))

    def fold_footprint(self, k0: int, k1: int, channels: int) -> int:
        """Distinct input words of the reduction indices [k0, k1) (k = offset x channels + channel) over all output
        pixels: channel c is read at the offsets o with k0 <= o x channels + c < k1."""
        q0, r0 = divmod(k0, channels)
        q1, r1 = divmod(k1 - 1, channels)
        bounds = sorted({0, r0, r1 + 1, channels})
        total = 0
        for c0, c1 in zip(bounds, bounds[1:], strict=False):
            oa = q0 + 1 if c0 < r0 else q0
            ob = q1 if c0 <= r1 else q1 - 1
            if oa <= ob:
                total += (c1 - c0) * self.offsets_footprint(oa, ob)
        return total

    def ws_pass_reads(self, channels: int, rows: int, w: int) -> int | None:
        """ws, one pass over the reduction folds of ``rows`` indices, when every fold's footprint exceeds the window
        ``w`` (the fold model then reads each fold's footprint); None otherwise."""
        k = self.r * self.s * channels
        folds = math.ceil(k / rows)
        if channels >= rows:  # a fold's runs are of different channels: it reads >= (smallest offset) x its length
            ys = [self._y(fy)[1] for fy in range(self.r)]
            xs = [self._x(fx)[1] for fx in range(self.s)]
            if min(ys) * min(xs) * min(rows, k - (folds - 1) * rows) >= w:
                return channels * sum(ys) * sum(xs)
        if folds > MAX_CLOSED_FORM_FOLDS:
            return None
        total = 0
        for k0 in range(0, k, rows):
            words = self.fold_footprint(k0, min(k, k0 + rows), channels)
            if words < w:
                return None
            total += words
        return total



# --- inputs too large for the fold model ------------------------------------------------------------------------------


def large_layer_reads(lat: Lattice, dataflow: str, rows: int, cols: int, w: int, n_cols: int, channels: int,
                       distinct: int) -> float | None:
    """DRAM reads of an input too large for the fold model where a closed form holds, else None.

    - Filter windows that never overlap (stride >= dilated filter, a GEMM, a 1x1 conv): every input word is in one
      fold only, so a pass reads each once: ``distinct`` for is, ``distinct`` per N-tile for ws and os (when the
      input is twice the window or more, no word survives from one pass to the next).
    - ws, every reduction fold larger than the window: the fold model reads each fold's footprint (its distinct
      words) per pass.

    These are the fold model's counts without its window-boundary effects (a window closing inside a slice and the
    rounding of where), which move at most a few words per window closed.
    """
    passes = math.ceil(n_cols / cols) if dataflow in ("ws", "os") else 1
    if lat.disjoint and (dataflow == "is" or distinct >= 2 * w):
        return float(passes * distinct)
    if dataflow == "ws":
        per_pass = lat.ws_pass_reads(channels, rows, w)
        if per_pass is not None:
            return float(passes * per_pass)
    return None
