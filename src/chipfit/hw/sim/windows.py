"""The fold model: SCALE-Sim's read window run fold by fold over the input pixels each fold touches, on bitsets.

For an input feature map larger than one read window (:mod:`chipfit.hw.sim.memory` dispatches here), the window
process is run fold by fold on the set of input pixels each fold touches, kept per channel range as bitsets (bit
y x W + x of an int), with a fold cut into time slices in stream order (ws: output rows; os and is: filter offsets);
a window that closes inside a slice is split in proportion to the slice's new addresses. Identical passes (ws, os: one
per N-tile) are run until they repeat and then counted. Padding pixels are made on chip and never read from DRAM.

The model costs steps per fold over bitsets as large as the input; :func:`fold_work` estimates that cost from the
shapes alone, so that the caller can keep it within its limits.
"""

from __future__ import annotations

import math

from chipfit.hw.sim.workload import SimLayer

STEP_BITS = 1 << 13  # a step of the window over bitsets of this many bits costs about twice a bare step


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


# --- the model --------------------------------------------------------------------------------------------------------


def fold_work(view: SimLayer, dataflow: str, rows: int, cols: int, n_cols: int, w: int, max_passes: int = 4) -> float:
    """What the fold model costs on ``view`` (a convolution; :mod:`chipfit.hw.sim.memory` views a GEMM as one) in
    bare steps of the window, an upper estimate from the shapes alone: the steps of its folds, plus one per piece
    alive when a window closes inside a step (once per ``w`` words streamed), all scaled by the size of the bitsets
    (a step over :data:`STEP_BITS` bits costs about two bare ones)."""
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


def fold_model(view: SimLayer, dataflow: str, rows: int, cols: int, w: int, n_cols: int, max_passes: int) -> float:
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
