"""On-chip buffers and DRAM traffic of a layer on a systolic array, following SCALE-Sim's read-buffer model.

The ifmap, filter and ofmap SRAMs are double buffered. SCALE-Sim (memory/read_buffer_estimate_bw.py, the model of
its CALC mode) fills a read buffer in windows: half the buffer, W = 50 x floor(words / 100) distinct addresses, is
what the array reads from while the other half fills. Within a window an address is fetched from DRAM once; when W
distinct addresses have been fetched the window closes, and an address needed again later is fetched again. DRAM
reads are therefore the number of distinct addresses per window, summed over the windows of the operand's demand
stream (the order the array asks for it: fold after fold, and within a fold in time order).

Here that count is computed without walking the stream:

- **Filters** are read in blocks that repeat identically (os: each N-tile of the filter matrix once per M-fold; is:
  the whole matrix once per M-fold; ws: every weight once), so the window process has a closed form per block
  (:func:`repeat_block`) and over a run of equal blocks (:func:`repeat_tiles`), exact for SCALE-Sim's streams.
- **Input feature maps** repeat with overlap (neighbouring output pixels share input pixels). An input that fits one
  window is read once; its size (the input pixels some output reads) has a closed form. Otherwise the window process
  is run fold by fold (the *fold model*) on the set of input pixels each fold touches, kept per channel range as
  bitsets, with a fold cut into time slices in stream order (ws: output rows; os and is: filter offsets); a window
  that closes inside a slice is split in proportion to the slice's new addresses. Identical passes (ws, os: one per
  N-tile) are run until they repeat and then counted. Padding pixels are made on chip and never read from DRAM.
- **Large inputs**: the fold model costs steps per fold over bitsets as large as the input, so it runs only up to
  :data:`MAX_FOLD_WORK` steps and :data:`MAX_MASK_BITS` input pixels (networks at their usual input sizes stay far
  below). Beyond that, closed forms that cost nothing per pixel: filter windows that never overlap (a GEMM, a 1x1
  or patchify convolution) put each input word in one fold only, read once per pass; in ws, when every reduction
  fold is larger than a window, each fold reads its footprint once per pass. These are the fold model's counts less
  its window-boundary effects (where in a slice a window closes, and the rounding of it): a few words per window
  closed. Any other layer beyond the limits (overlapping windows in os or is) raises :class:`LayerTooLargeError`,
  naming the layer and the limits.
- **Outputs**: SCALE-Sim writes the partial sums of every reduction fold to DRAM (ws and is: ceil(K / Ra) x M x N
  words; os: M x N). That is what a SCALE-Sim ``.cfg`` gets (``Arch.psum_to_dram``). Otherwise partial sums stay in
  the ofmap SRAM while one column fold's tile (ws: M x Ca, is: Ca x N accumulators of 32 bits) fits, and spill to
  DRAM (written and read back once per extra fold) when it does not.

Stalls: SCALE-Sim's CALC mode has none. With a DRAM bandwidth B (bytes per cycle), the first window of each input
operand is loaded before compute starts (it cannot overlap), and the rest overlaps compute thanks to double
buffering: total = fill / B + max(compute, rest / B). More bandwidth is never slower.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from chipfit.hw.sim.systolic import Mapping
from chipfit.hw.sim.workload import SimLayer

PSUM_BITS = 32
# Limits of the fold model (beyond them, a closed form where one holds, else LayerTooLargeError naming the layer):
MAX_MASK_BITS = 1 << 26  # input pixels of one image and group: its bitsets are of this many bits (8 MB) at most
STEP_BITS = 1 << 13  # a step of the window over bitsets of this many bits costs about twice a bare step
MAX_FOLD_WORK = 1e7  # bare steps of the window (see _fold_work): 5 to 50 s
MAX_CLOSED_FORM_FOLDS = 20_000  # reduction folds summed one by one by the ws closed form


def window_words(sram_bytes: int, bits: int) -> int:
    """Distinct words of one read window: the active half of the buffer in SCALE-Sim's 100 sets."""
    words = int(sram_bytes * 8 // bits)
    return 50 * (words // 100)


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


@dataclass
class Traffic:
    """Word counts of one layer (per the whole batch)."""

    ifmap_dram_reads: float = 0.0
    filter_dram_reads: float = 0.0
    ofmap_dram_writes: float = 0.0
    psum_dram_reads: float = 0.0
    ifmap_sram_reads: float = 0.0
    filter_sram_reads: float = 0.0
    ofmap_sram_writes: float = 0.0
    ofmap_sram_reads: float = 0.0
    fill_words: float = 0.0  # loaded before compute can start
    psum_bits: int = 0  # width of spilled partial sums (0: no spill)


class LayerFitsNoBufferError(ValueError):
    """A layer whose smallest unit of work does not fit the buffer it needs."""


class LayerTooLargeError(ValueError):
    """A layer beyond the fold model's limits (:data:`MAX_FOLD_WORK`, :data:`MAX_MASK_BITS`) with no closed form."""


# --- filters ------------------------------------------------------------------------------------------------------


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


# --- input feature maps ------------------------------------------------------------------------------------------


def _spread(pattern: int, count: int, period: int) -> int:
    """``pattern`` repeated ``count`` times, ``period`` bits apart (by doubling: no big-int multiply or divide)."""
    if count <= 0:
        return 0
    out, have = pattern, 1
    while have * 2 <= count:
        out |= out << (have * period)
        have *= 2
    if have < count:
        out |= _spread(pattern, count - have, period) << (have * period)
    return out


class _Geometry:
    """Input pixels (bit y * W + x of an int) that a conv's output pixels touch at a filter offset."""

    def __init__(self, layer: SimLayer):
        self.h, self.w = layer.in_h, layer.in_w
        self.e, self.f = layer.out_h, layer.out_w
        self.r, self.s = layer.filt_h, layer.filt_w
        (self.sh, self.sw), (self.ph, self.pw), (self.dh, self.dw) = layer.stride, layer.padding, layer.dilation
        self._cache: dict[tuple[int, int, int], int] = {}
        self._patterns: dict[tuple[int, int, int, int], int] = {}
        self._cached_bits = 0

    def _row_bits(self, fx: int, a: int, b: int) -> int:
        """x-bits of output columns [a, b) at filter column fx (padding dropped)."""
        off = fx * self.dw - self.pw
        lo = max(a, -(off // self.sw))  # first column whose pixel is not padding
        hi = min(b - 1, (self.w - 1 - off) // self.sw)
        if hi < lo:
            return 0
        return _spread(1, hi - lo + 1, self.sw) << (lo * self.sw + off)

    def _pattern(self, fxs: range, a: int, b: int) -> int:
        key = (fxs.start, fxs.stop, a, b)
        bits = self._patterns.get(key)
        if bits is None:
            bits = 0
            for fx in fxs:
                bits |= self._row_bits(fx, a, b)
            self._patterns[key] = bits
        return bits

    def _block(self, fys: range, fxs: range, oy0: int, oy1: int, a: int, b: int) -> int:
        """Bits of output rows [oy0, oy1), columns [a, b), over filter rows ``fys`` and columns ``fxs``."""
        pattern = self._pattern(fxs, a, b)
        if not pattern:
            return 0
        bits = 0
        for fy in fys:
            off = fy * self.dh - self.ph
            lo = max(oy0, -(off // self.sh))
            hi = min(oy1 - 1, (self.h - 1 - off) // self.sh)
            if hi >= lo:
                bits |= _spread(pattern, hi - lo + 1, self.sh * self.w) << ((lo * self.sh + off) * self.w)
        return bits

    def mask(self, o: int, m0: int, m1: int) -> int:
        """Input pixels of output pixels [m0, m1) (raster order) at filter offset o = fy * S + fx, or at every
        offset for o = -1."""
        key = (o, m0, m1)
        got = self._cache.get(key)
        if got is not None:
            return got
        if o < 0:
            fys, fxs = range(self.r), range(self.s)
        else:
            fy, fx = divmod(o, self.s)
            fys, fxs = range(fy, fy + 1), range(fx, fx + 1)
        oy0, x0 = divmod(m0, self.f)
        oy1, x1 = divmod(m1, self.f)
        if oy0 == oy1:
            bits = self._block(fys, fxs, oy0, oy0 + 1, x0, x1)
        else:
            bits = self._block(fys, fxs, oy0, oy0 + 1, x0, self.f)
            bits |= self._block(fys, fxs, oy0 + 1, oy1, 0, self.f)
            if x1:
                bits |= self._block(fys, fxs, oy1, oy1 + 1, 0, x1)
        if self._cached_bits < 1 << 29:  # keep the cache under 64 MB
            self._cache[key] = bits
            self._cached_bits += bits.bit_length()
        return bits


class _Window:
    """SCALE-Sim's read window, by channel ranges, each with the bitset of input pixels it holds."""

    def __init__(self, channels: int, w: int):
        self.channels, self.w = channels, w
        self.reads = 0.0
        self.u = 0.0
        self.reset()

    def reset(self) -> None:
        self.bounds = [0, self.channels]  # segment i covers channels [bounds[i], bounds[i + 1])
        self.masks = [0]
        self.u = 0.0

    def _split(self, c: int) -> int:
        """Index of the segment starting at channel c (splitting one if needed)."""
        b = self.bounds
        lo, hi = 0, len(b) - 1
        while lo < hi:  # last bound <= c
            mid = (lo + hi + 1) // 2
            if b[mid] <= c:
                lo = mid
            else:
                hi = mid - 1
        if b[lo] == c:
            return lo
        b.insert(lo + 1, c)
        self.masks.insert(lo + 1, self.masks[lo])
        return lo + 1

    def touch(self, c0: int, c1: int, bits: int) -> int:
        """Add input pixels ``bits`` of channels [c0, c1); returns the words newly fetched."""
        if c1 <= c0 or not bits:
            return 0
        i = self._split(c0)
        j = self._split(c1) if c1 < self.channels else len(self.masks)
        new = 0
        for s in range(i, j):
            fresh = bits & ~self.masks[s]
            if fresh:
                new += fresh.bit_count() * (self.bounds[s + 1] - self.bounds[s])
                self.masks[s] |= bits
        return new

    def _touch_all(self, pieces: list[tuple[int, int, int, int, int, str]], geo: _Geometry) -> int:
        merged: dict[tuple[int, int], int] = {}
        for o, c0, c1, m0, m1, _ in pieces:
            merged[(c0, c1)] = merged.get((c0, c1), 0) | geo.mask(o, m0, m1)
        return sum(self.touch(c0, c1, bits) for (c0, c1), bits in merged.items())

    def try_commit(self, pieces: list[tuple[int, int, int, int, int, str]], geo: _Geometry) -> bool:
        """Stream ``pieces`` at once if the window does not close meanwhile; otherwise change nothing."""
        saved = (list(self.bounds), list(self.masks))
        new = self._touch_all(pieces, geo)
        if self.u + new < self.w:
            self.u += new
            self.reads += new
            return True
        self.bounds, self.masks = saved
        return False

    def step(self, pieces: list[tuple[int, int, int, int, int, str]], geo: _Geometry) -> None:
        """Stream one time slice: pieces (offset, c0, c1, m0, m1, axis) run in parallel in time; ``axis`` says how a
        piece shortens when the window closes part-way (``m``: fewer output pixels, ``c``: fewer channels)."""
        while pieces:
            new = self._touch_all(pieces, geo)
            if self.u + new < self.w:
                self.u += new
                self.reads += new
                return
            # the window closes after (w - u) of the new words: the rest of the slice starts a new window
            frac = (self.w - self.u) / new
            self.reads += self.w - self.u
            self.reset()
            rest = []
            for o, c0, c1, m0, m1, axis in pieces:
                if axis == "c":  # time runs over channels, all output pixels of one channel at a time
                    done = frac * (c1 - c0)
                    q = int(done)
                    split = m0 + round((done - q) * (m1 - m0))
                    if split < m1 and c0 + q < c1:
                        rest.append((o, c0 + q, c0 + q + 1, split, m1, "m"))
                    if c0 + q + 1 < c1:
                        rest.append((o, c0 + q + 1, c1, m0, m1, axis))
                else:
                    m0 = m0 + max(1, round(frac * (m1 - m0)))
                    if m0 < m1:
                        rest.append((o, c0, c1, m0, m1, axis))
            pieces = rest


def _lanes(k0: int, k1: int, channels: int) -> list[tuple[int, int, int]]:
    """Reduction indices [k0, k1) as (offset, c0, c1) runs; k = offset x channels + c."""
    out = []
    k = k0
    while k < k1:
        o, c = divmod(k, channels)
        c1 = min(channels, c + k1 - k)
        out.append((o, c, c1))
        k += c1 - c
    return out


# --- closed forms over the input pixels ------------------------------------------------------------------------
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


class _Lattice:
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


def _conv_view(layer: SimLayer) -> SimLayer:
    """The layer as a convolution of one image: a GEMM (m x k) @ (k x n) is an m x 1 image of k channels under a 1x1
    filter."""
    if layer.kind != "gemm":
        return layer
    return SimLayer(layer.name, "conv", in_h=layer.m, in_w=1, in_c=layer.k, out_h=layer.m, out_w=1)


def _fold_work(view: SimLayer, dataflow: str, rows: int, cols: int, n_cols: int, w: int, max_passes: int = 4) -> float:
    """What the fold model costs on ``view`` (a convolution, see :func:`_conv_view`) in bare steps of the window, an
    upper estimate from the shapes alone: the steps of its folds, plus one per piece alive when a window closes
    inside a step (once per ``w`` words streamed), all scaled by the size of the bitsets (a step over
    :data:`STEP_BITS` bits costs about two bare ones)."""
    channels = view.in_c // view.groups
    offsets = view.filt_h * view.filt_w
    k = offsets * channels
    folds = math.ceil(k / rows)  # reduction folds
    lanes = min(rows, -(-rows // channels) + 1)  # (offset, channel range) runs in one reduction fold
    m = view.out_h * view.out_w
    passes = min(math.ceil(n_cols / cols), max_passes)
    if dataflow == "ws":
        steps = passes * folds * 10 * lanes  # a try, then at most 9 slices of the fold's lanes
        alive = lanes
    else:  # a piece split by a closing window leaves one piece per output pixel of the fold at most
        pixels = min(cols if dataflow == "is" else rows, m)
        if dataflow == "is":
            passes, steps = 1, math.ceil(m / cols) * (1 + folds * (1 + lanes))
        else:
            steps = passes * math.ceil(m / rows) * (1 + offsets)
        alive = min(pixels, pixels * k / w + 1)
    closes = passes * m * k / w
    return (steps + closes * alive) * (1 + view.in_h * view.in_w / STEP_BITS)


def ifmap_reads(layer: SimLayer, dataflow: str, rows: int, cols: int, w: int, n_cols: int,
                max_passes: int = 4) -> float:
    """DRAM reads of one image and one group's input feature map (words), SCALE-Sim's window model.

    ``n_cols`` is N of the product (ws and os stream the whole ifmap once per N-tile). An input that fits one window
    is read once; otherwise the fold model runs, when it costs at most :data:`MAX_FOLD_WORK` steps over at most
    :data:`MAX_MASK_BITS` input pixels; beyond that a closed form (:func:`_large_layer_reads`) where one holds.

    Raises:
        LayerTooLargeError: the layer exceeds the fold model's limits and no closed form holds for it.
    """
    view = _conv_view(layer)
    lat = _Lattice(view)
    channels = view.in_c // view.groups
    distinct = lat.footprint() * channels
    if distinct <= w:
        return float(distinct)
    work = _fold_work(view, dataflow, rows, cols, n_cols, w, max_passes)
    pixels = view.in_h * view.in_w
    if work <= MAX_FOLD_WORK and pixels <= MAX_MASK_BITS:
        return _fold_model(view, dataflow, rows, cols, w, n_cols, max_passes)
    reads = _large_layer_reads(lat, dataflow, rows, cols, w, n_cols, channels, distinct)
    if reads is not None:
        return reads
    if lat.disjoint:
        why = "its input is under two read windows, so words may stay in the window from one pass to the next"
    elif dataflow == "ws":
        why = (f"its filter windows overlap and not every reduction fold is larger than a read window (or there are "
               f"over {MAX_CLOSED_FORM_FOLDS:,} folds)")
    else:
        why = "its filter windows overlap, so its folds share input pixels; ws has a closed form for such layers"
    raise LayerTooLargeError(
        f"layer {layer.name!r} is too large for the {dataflow} window model of its input feature map (about "
        f"{work:.3g} steps over {pixels:,} input pixels; the limits are {MAX_FOLD_WORK:.3g} steps and "
        f"{MAX_MASK_BITS:,} pixels) and no closed form holds for it: {why}. Simulate it as smaller layers (tiles of "
        "its input) or on another dataflow")


def _large_layer_reads(lat: _Lattice, dataflow: str, rows: int, cols: int, w: int, n_cols: int, channels: int,
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


def _fold_model(view: SimLayer, dataflow: str, rows: int, cols: int, w: int, n_cols: int, max_passes: int) -> float:
    """The window process run fold by fold over bitsets of input pixels (see the module docstring)."""
    geo = _Geometry(view)
    channels = view.in_c // view.groups
    m = view.out_h * view.out_w
    offsets = geo.r * geo.s
    k = offsets * channels
    win = _Window(channels, w)
    if dataflow == "is":
        for m0 in range(0, m, cols):
            m1 = min(m, m0 + cols)
            if win.try_commit([(-1, 0, channels, m0, m1, "c")], geo):
                continue
            for k0 in range(0, k, rows):
                lanes = _lanes(k0, min(k, k0 + rows), channels)
                if win.try_commit([(o, c0, c1, m0, m1, "c") for o, c0, c1 in lanes], geo):
                    continue
                for o, c0, c1 in reversed(lanes):
                    win.step([(o, c0, c1, m0, m1, "c")], geo)
        return win.reads
    passes = math.ceil(n_cols / cols)
    per_pass = []
    for _ in range(min(passes, max_passes)):
        before = win.reads
        if dataflow == "ws":
            out_rows = m // geo.f
            for k0 in range(0, k, rows):
                lanes = _lanes(k0, min(k, k0 + rows), channels)
                pieces = [(o, c0, c1, 0, m, "m") for o, c0, c1 in lanes]
                if win.try_commit(pieces, geo):
                    continue
                fold = _Window(channels, 1 << 62)
                fold.try_commit(pieces, geo)
                if fold.reads >= w:
                    # The fold alone overflows a window: its head cannot hit what earlier folds left (that was their
                    # tail, other output rows), so it reads its own footprint, and leaves its tail in the window.
                    win.reads += fold.reads
                    tail = (win.u + fold.reads) % w
                    win.reset()
                    start = m - max(1, int(m * tail / fold.reads))
                    win.step([(o, c0, c1, start, m, "m") for o, c0, c1 in lanes], geo)
                    win.reads -= win.u
                    win.u = tail
                    continue
                slices = max(1, min(out_rows, math.ceil(8 * fold.reads / w)))
                per_slice = -(-out_rows // slices)
                for r0 in range(0, out_rows, per_slice):
                    m0, m1 = r0 * geo.f, min(m, (r0 + per_slice) * geo.f)
                    win.step([(o, c0, c1, m0, m1, "m") for o, c0, c1 in lanes], geo)
        else:  # os: a fold is `rows` output pixels, streaming every (offset, channel) in time
            for m0 in range(0, m, rows):
                m1 = min(m, m0 + rows)
                if win.try_commit([(-1, 0, channels, m0, m1, "c")], geo):
                    continue
                for o in range(offsets):
                    win.step([(o, 0, channels, m0, m1, "c")], geo)
        per_pass.append(win.reads - before)
    if passes > len(per_pass):
        steady = per_pass[1:] if len(per_pass) > 1 else per_pass
        return win.reads + (passes - len(per_pass)) * sum(steady) / len(steady)
    return win.reads


# --- the layer ----------------------------------------------------------------------------------------------------


def layer_traffic(layer: SimLayer, mp: Mapping, *, rows: int, cols: int, bits: int, ifmap_sram: int,
                  filter_sram: int, ofmap_sram: int, psum_to_dram: bool) -> Traffic:
    """Words moved by an array layer (see the module docstring)."""
    g, m, k, n = mp.groups, mp.m, mp.k, mp.n  # k already shortened by sparsity
    df = mp.dataflow
    wi, wf = window_words(ifmap_sram, bits), window_words(filter_sram, bits)
    if wi <= 0 or wf <= 0:
        need = "ifmap" if wi <= 0 else "filter"
        raise LayerFitsNoBufferError(
            f"layer {layer.name!r}: the {need} SRAM holds fewer than 100 words of {bits} bits; SCALE-Sim's read "
            "buffer needs at least 100 (give a larger SRAM or fewer bits)")
    t = Traffic()
    batch = layer.batch
    m1 = m // batch  # one image
    rf = math.ceil(k / rows) if df in ("ws", "is") else 1  # reduction folds: partial sums per output
    # SRAM reads, as SCALE-Sim counts them (per group, times groups)
    if df == "ws":
        t.ifmap_sram_reads = math.ceil(n / cols) * m * k
        t.filter_sram_reads = k * n
    elif df == "os":
        t.ifmap_sram_reads = math.ceil(n / cols) * m * k
        t.filter_sram_reads = math.ceil(m / rows) * k * n
    else:
        t.ifmap_sram_reads = m * k
        t.filter_sram_reads = math.ceil(m / cols) * k * n
    # a quadconv's three branches are combined on chip: one output per three columns leaves the chip
    out_frac = 1 / 3 if layer.kind == "quadconv" else 1.0
    t.ofmap_sram_writes = rf * m * n
    outputs = m * n * out_frac
    if psum_to_dram:
        t.ofmap_dram_writes = rf * m * n * out_frac
    elif rf > 1:
        tile = (m if df == "ws" else min(m, cols)) * min(n, cols if df == "ws" else n)
        if tile * PSUM_BITS / 8 <= ofmap_sram:
            t.ofmap_dram_writes = outputs
            t.ofmap_sram_reads = (rf - 1) * m * n
        else:
            t.psum_bits = PSUM_BITS
            t.ofmap_dram_writes = outputs + (rf - 1) * m * n  # the spilled folds (at PSUM_BITS, see simulate)
            t.psum_dram_reads = (rf - 1) * m * n
            t.ofmap_sram_reads = (rf - 1) * m * n
    else:
        t.ofmap_dram_writes = outputs
    t.filter_dram_reads = filter_reads(df, m, k, n, rows, cols, wf)
    # inputs: one image (images do not share input pixels); sparsity does not shrink the inputs a fold needs
    one = replace(layer, m=m1) if layer.kind == "gemm" else layer
    t.ifmap_dram_reads = ifmap_reads(one, df, rows, cols, wi, n) * batch
    scale = ("ifmap_dram_reads", "filter_dram_reads", "ofmap_dram_writes", "psum_dram_reads", "ifmap_sram_reads",
             "filter_sram_reads", "ofmap_sram_writes", "ofmap_sram_reads")
    for f in scale:
        setattr(t, f, getattr(t, f) * g)
    first_i = min(wi, t.ifmap_dram_reads)
    first_f = min(wf, t.filter_dram_reads)
    t.fill_words = first_i + first_f
    return t
