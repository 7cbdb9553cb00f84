"""On-chip buffers and DRAM traffic of a layer on a systolic array, following SCALE-Sim's read-buffer model.

The ifmap, filter and ofmap SRAMs are double buffered. SCALE-Sim (memory/read_buffer_estimate_bw.py, the model of
its CALC mode) fills a read buffer in windows: half the buffer, W = 50 x floor(words / 100) distinct addresses, is
what the array reads from while the other half fills. Within a window an address is fetched from DRAM once; when W
distinct addresses have been fetched the window closes, and an address needed again later is fetched again. DRAM
reads are therefore the number of distinct addresses per window, summed over the windows of the operand's demand
stream (the order the array asks for it: fold after fold, and within a fold in time order).

Here that count is computed without walking the stream. This module is the entry point (:func:`layer_traffic`, its
:class:`Traffic` record and its errors) and chooses the model for each operand:

- **Filters** repeat in identical blocks, in closed form (:mod:`chipfit.hw.sim.closed_forms`).
- **Input feature maps** repeat with overlap (neighbouring output pixels share input pixels). An input that fits one
  window is read once; its size (the input pixels some output reads) has a closed form. Otherwise the window process
  is run fold by fold, the *fold model* (:mod:`chipfit.hw.sim.windows`).
- **Large inputs**: the fold model costs steps per fold over bitsets as large as the input, so it runs only up to
  :data:`MAX_FOLD_WORK` steps and :data:`MAX_MASK_BITS` input pixels (networks at their usual input sizes stay far
  below). Beyond that, closed forms that cost nothing per pixel (:mod:`chipfit.hw.sim.closed_forms`): filter windows
  that never overlap (a GEMM, a 1x1 or patchify convolution), and ws with every reduction fold larger than a window.
  Any other layer beyond the limits (overlapping windows in os or is) raises :class:`LayerTooLargeError`, naming the
  layer and the limits.
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
from dataclasses import dataclass, replace

from chipfit.hw.sim.closed_forms import (
    MAX_CLOSED_FORM_FOLDS,
    Lattice,
    filter_reads,
    large_layer_reads,
    repeat_block,
    repeat_tiles,
)
from chipfit.hw.sim.systolic import Mapping
from chipfit.hw.sim.windows import STEP_BITS, fold_model, fold_work
from chipfit.hw.sim.workload import SimLayer

__all__ = ["MAX_CLOSED_FORM_FOLDS", "MAX_FOLD_WORK", "MAX_MASK_BITS", "PSUM_BITS", "STEP_BITS",
           "LayerFitsNoBufferError", "LayerTooLargeError", "Traffic", "filter_reads", "ifmap_reads", "layer_traffic",
           "repeat_block", "repeat_tiles", "window_words"]

PSUM_BITS = 32
# Limits of the fold model (beyond them, a closed form where one holds, else LayerTooLargeError naming the layer);
# read here, where the model is chosen, so that changing them here changes the choice:
MAX_MASK_BITS = 1 << 26  # input pixels of one image and group: its bitsets are of this many bits (8 MB) at most
MAX_FOLD_WORK = 1e7  # bare steps of the window (see windows.fold_work): 5 to 50 s


def window_words(sram_bytes: int, bits: int) -> int:
    """Distinct words of one read window: the active half of the buffer in SCALE-Sim's 100 sets."""
    words = int(sram_bytes * 8 // bits)
    return 50 * (words // 100)


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


# --- input feature maps: which model ----------------------------------------------------------------------------------


def _conv_view(layer: SimLayer) -> SimLayer:
    """The layer as a convolution of one image: a GEMM (m x k) @ (k x n) is an m x 1 image of k channels under a 1x1
    filter."""
    if layer.kind != "gemm":
        return layer
    return SimLayer(layer.name, "conv", in_h=layer.m, in_w=1, in_c=layer.k, out_h=layer.m, out_w=1)


def ifmap_reads(layer: SimLayer, dataflow: str, rows: int, cols: int, w: int, n_cols: int,
                max_passes: int = 4) -> float:
    """DRAM reads of one image and one group's input feature map (words), SCALE-Sim's window model.

    ``n_cols`` is N of the product (ws and os stream the whole ifmap once per N-tile). An input that fits one window
    is read once; otherwise the fold model runs, when it costs at most :data:`MAX_FOLD_WORK` steps over at most
    :data:`MAX_MASK_BITS` input pixels; beyond that a closed form
    (:func:`~chipfit.hw.sim.closed_forms.large_layer_reads`) where one holds.

    Raises:
        LayerTooLargeError: the layer exceeds the fold model's limits and no closed form holds for it.
    """
    view = _conv_view(layer)
    lat = Lattice(view)
    channels = view.in_c // view.groups
    distinct = lat.footprint() * channels
    if distinct <= w:
        return float(distinct)
    work = fold_work(view, dataflow, rows, cols, n_cols, w, max_passes)
    pixels = view.in_h * view.in_w
    if work <= MAX_FOLD_WORK and pixels <= MAX_MASK_BITS:
        return fold_model(view, dataflow, rows, cols, w, n_cols, max_passes)
    reads = large_layer_reads(lat, dataflow, rows, cols, w, n_cols, channels, distinct)
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


# --- the layer --------------------------------------------------------------------------------------------------------


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
