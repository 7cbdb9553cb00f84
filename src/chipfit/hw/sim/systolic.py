"""Compute cycles of a layer on a systolic array, in closed form, with SCALE-Sim's cycle conventions.

A convolution is the matrix product ifmap (M x K) @ filter (K x N): M = output pixels (x batch), K = R x S x C/groups,
N = filters. On an Ra x Ca array each dataflow maps two of (M, K, N) onto the array (Sr rows, Sc columns) and streams
the third in time (T), cutting Sr and Sc into folds of Ra x Ca:

======== ====== ====== ====== ===============================================
dataflow Sr     Sc     T      cycles of one fold (fill, stream, drain, skew)
======== ====== ====== ====== ===============================================
ws       K      N      M      2 Ra + Ca + M - 2
os       M      N      K      Ra + Ca + K - 2
is       K      M      N      2 Ra + Ca + N - 2
======== ====== ====== ====== ===============================================

Derived from SCALE-Sim 3.0.0's demand matrices (compute/systolic_compute_{ws,os,is}.py): a ws fold is Ra cycles to
load the weights, T rows of inputs plus Ca - 1 to drain, and the Ra - 1 skew of the first column; os streams T
operand rows plus Ra - 1 (filter) or Ca - 1 (ifmap) to drain, skewed by the other side; is mirrors ws with the
inputs stationary. The layer takes folds x cycles-per-fold cycles; SCALE-Sim reports the index of the last cycle,
counting from 0, which is one less. ``compute_cycles`` follows that report exactly.

What SCALE-Sim does not do, done here:

- **Groups and depthwise**, natively: the G products are the diagonal blocks of one block-diagonal matrix (ws: G
  blocks of K/G rows x N/G columns, streamed over M; os: G blocks of M rows x N/G columns, streamed over K/G; is: G
  blocks of K/G rows x M columns, streamed over N/G). Folds are the Ra x Ca tiles that touch a block, so several small
  groups share one fold side by side (9 rows each for a 3x3 depthwise filter in ws) and a group larger than the array
  takes several. The dense mapping with zero weights is always possible too; the cheaper of the two is taken, so a
  grouped layer never costs more cycles than the dense layer of the same shape.
- **Batch** adds rows to M (weights are reused across images).
- **Sparsity** shortens K, the reduction each column streams: N:M structured sparsity keeps N of every M weights (K'
  = ceil(K N / M), selected inputs muxed in as in sparse tensor cores); unstructured sparsity at density d keeps
  ceil(K d) weights per column, each with an index (Cambricon-X's step indexing: ``index_bits`` per kept weight), and
  the array is as slow as if every column kept that many (uniform density assumed; no load imbalance modelled).
- **Bit width**: data wider than the array's ``word_bits`` takes ceil(bits / word_bits)^2 passes (a 16-bit multiply
  from four 8-bit ones); narrower data is not packed (no speed-up, but fewer bytes).
- **Quadratic convolution**: conv_a, conv_b and conv_c share the input, so they run as one product with 3N
  columns; the product and the sum, 2 operations per output, run on the vector unit.
- **Vector unit**: element-wise, pooling and normalisation layers take ceil(operations / lanes) cycles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chipfit.hw.sim.workload import SimLayer

if TYPE_CHECKING:  # numpy loads only when grouped layers are tiled: a dense topology answers without it
    import numpy as np


@dataclass(frozen=True)
class Sparsity:
    """Weight sparsity: ``kind`` is ``nm`` or ``unstructured``; ``density`` the fraction of weights kept."""

    kind: str
    density: float
    n: int = 0
    m: int = 0

    @classmethod
    def parse(cls, spec: str | float | Sparsity | None) -> Sparsity | None:
        """``"2:4"`` (N:M structured), ``0.5`` or ``"0.5"`` (unstructured, fraction of weights that are zero)."""
        if spec is None or isinstance(spec, Sparsity):
            return spec
        text = str(spec).strip()
        if ":" in text:
            a, _, b = text.partition(":")
            if not (a.strip().isdigit() and b.strip().isdigit()) or not 0 < int(a) <= int(b):
                raise ValueError(f"sparsity {spec!r}: an N:M ratio needs 0 < N <= M, e.g. 2:4")
            n, m = int(a), int(b)
            return None if n == m else cls("nm", n / m, n, m)
        try:
            s = float(text)
        except ValueError:
            raise ValueError(f"sparsity {spec!r}: give N:M (e.g. 2:4) or the fraction of zero weights (e.g. 0.5)") \
                from None
        if not 0 <= s < 1:
            raise ValueError(f"sparsity {spec!r}: the fraction of zero weights must lie in [0, 1)")
        return None if s == 0 else cls("unstructured", 1 - s)

    def kept(self, k: int) -> int:
        """Reduction length left of ``k``."""
        if self.kind == "nm":
            return (k // self.m) * self.n + min(k % self.m, self.n)
        return max(1, math.ceil(k * self.density - 1e-9))

    def label(self) -> str:
        return f"{self.n}:{self.m}" if self.kind == "nm" else f"{1 - self.density:g} unstructured"


@dataclass(frozen=True)
class Mapping:
    """How a layer's product is laid on the array.

    Attributes:
        dataflow: ws, os or is.
        groups, m, k, n: the product per group after sparsity (k is the kept reduction length).
        sr, sc, t: per-group rows, columns and streamed length in array terms.
        folds: Ra x Ca tiles run.
        fold_cycles: cycles of one fold.
        passes: repeats for data wider than the array's words.
        packed: whether groups share folds (block-diagonal) rather than running dense with zero weights.
    """

    dataflow: str
    groups: int
    m: int
    k: int
    n: int
    sr: int
    sc: int
    t: int
    folds: int
    fold_cycles: int
    passes: int
    packed: bool

    @property
    def cycles(self) -> int:
        """SCALE-Sim's compute cycles: folds x fold cycles - 1, times the width passes."""
        return self.passes * (self.folds * self.fold_cycles - 1)


def fold_cycles(dataflow: str, rows: int, cols: int, t: int) -> int:
    if dataflow == "os":
        return rows + cols + t - 2
    return 2 * rows + cols + t - 2


def operand_dims(dataflow: str, m: int, k: int, n: int) -> tuple[int, int, int]:
    """(Sr, Sc, T) of one product."""
    return {"ws": (k, n, m), "os": (m, n, k), "is": (k, m, n)}[dataflow]


MAX_TILES_COUNTED = 1 << 22  # row tiles of a block-diagonal matrix counted one by one; more: by their period


def block_diagonal_tiles(groups: int, a: int, b: int, rows: int, cols: int) -> int:
    """Ra x Ca tiles of a block-diagonal matrix of ``groups`` blocks of a x b that contain part of a block."""
    if groups == 1:
        return math.ceil(a / rows) * math.ceil(b / cols)
    n = math.ceil(groups * a / rows)
    if n > MAX_TILES_COUNTED:
        return _tiles_by_period(groups, a, b, rows, cols)
    import numpy as np

    tiles = np.arange(n, dtype=np.int64)
    first = tiles * rows
    last = np.minimum(first + rows, groups * a) - 1
    g_lo, g_hi = first // a, last // a
    return int(np.sum(((g_hi + 1) * b - 1) // cols - (g_lo * b) // cols + 1))


def _tiles_by_period(groups: int, a: int, b: int, rows: int, cols: int) -> int:
    """:func:`block_diagonal_tiles` for many row tiles, from one period of the pattern (at most Ra x Ca tiles or
    groups), so the cost does not grow with the matrix."""
    import numpy as np

    n = math.ceil(groups * a / rows)
    if a < rows:
        # A row tile holds parts of several groups. After t1 tiles the tile edges fall on the same place in a block
        # again (l1 groups further on); after a whole number of those the column tiles do too.
        t1 = a // math.gcd(a, rows)
        l1 = t1 * rows // a
        period = t1 * (cols // math.gcd(cols, l1 * b))

        def full_tiles(t: np.ndarray) -> int:  # column tiles of row tiles t (none of them the last)
            g_lo, g_hi = t * rows // a, ((t + 1) * rows - 1) // a
            return int(np.sum(((g_hi + 1) * b - 1) // cols - (g_lo * b) // cols + 1))

        q, rem = divmod(n - 1, period)
        big = (period + 1) * rows * (b + 1)
        last_lo = (n - 1) * rows // a  # the last row tile ends with the last group
        return (q * _chunked(full_tiles, period, big) + _chunked(full_tiles, rem, big)
                + (groups * b - 1) // cols - last_lo * b // cols + 1)
    # A group spans whole row tiles, and a row tile crosses at most one boundary between groups: count per group
    # the tiles inside it and the one it shares with the next, a pattern that repeats every `period` groups.
    period = math.lcm(rows // math.gcd(a, rows), cols // math.gcd(b, cols))

    def per_group(g: np.ndarray) -> int:  # tiles of groups g (none of them the last)
        inside = (g + 1) * a // rows - (-(-g * a // rows))
        crossing = ((g + 1) * a % rows != 0).astype(np.int64)
        own = ((g + 1) * b - 1) // cols - g * b // cols + 1
        shared = ((g + 2) * b - 1) // cols - g * b // cols + 1
        return int(np.sum(inside * own + crossing * shared))

    q, rem = divmod(groups - 1, period)
    big = (period + 2) * max(a, b) * (cols + 1)
    g = groups - 1
    last = (n - (-(-g * a // rows))) * ((groups * b - 1) // cols - g * b // cols + 1)
    return q * _chunked(per_group, period, big) + _chunked(per_group, rem, big) + last


def _chunked(f: Callable[[np.ndarray], int], count: int, big: int, chunk: int = 1 << 20) -> int:
    """sum(f(i) for i in range(count)), ``f`` taking an array of indices, in arrays of at most ``chunk``; ``big``
    bounds the products ``f`` forms (beyond int64 the arrays hold Python integers)."""
    import numpy as np

    dtype = np.int64 if big < 1 << 62 else object
    return sum(f(np.arange(i, min(count, i + chunk)).astype(dtype)) for i in range(0, count, chunk))


def width_passes(bits: int, word_bits: int) -> int:
    return math.ceil(bits / word_bits) ** 2


def map_layer(layer: SimLayer, dataflow: str, rows: int, cols: int, *, bits: int = 8, word_bits: int = 8,
              sparsity: Sparsity | None = None) -> Mapping:
    """The cheaper of the block-diagonal and the dense (zero-weight) mapping of ``layer`` (see the module doc)."""
    if dataflow not in ("ws", "os", "is"):
        raise ValueError(f"dataflow must be ws, os or is, not {dataflow!r}")
    g, m, k, n = layer.gemm()
    if sparsity is not None:
        k = sparsity.kept(k)
    passes = width_passes(bits, word_bits)
    sr, sc, t = operand_dims(dataflow, m, k, n)
    packed = Mapping(dataflow, g, m, k, n, sr, sc, t, block_diagonal_tiles(g, sr, sc, rows, cols),
                     fold_cycles(dataflow, rows, cols, t), passes, g > 1)
    if g == 1:
        return packed
    # dense with zero weights: one product with K x G rows of reduction and N x G columns
    dsr, dsc, dt = operand_dims(dataflow, m, k * g, n * g)
    dense = Mapping(dataflow, g, m, k, n, dsr, dsc, dt, math.ceil(dsr / rows) * math.ceil(dsc / cols),
                    fold_cycles(dataflow, rows, cols, dt), passes, False)
    return packed if packed.cycles <= dense.cycles else dense


def vector_cycles(layer: SimLayer, lanes: int) -> int:
    return math.ceil(layer.vector_ops / lanes) if layer.vector_ops else 0
