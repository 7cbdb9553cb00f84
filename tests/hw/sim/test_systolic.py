"""Compute cycles in closed form, checked by hand on tiny layers with SCALE-Sim's conventions.

SCALE-Sim 3.0.0 reported exactly these numbers for the same layers on a 4x3 array (rows x columns), 1 kB buffers,
CALC mode (run once by hand; the bench runs it on hundreds of layers).
"""

from __future__ import annotations

import random

import pytest

from chipfit.hw.sim import systolic
from chipfit.hw.sim.systolic import Sparsity, block_diagonal_tiles, map_layer
from chipfit.hw.sim.topology import read_topology
from chipfit.hw.sim.workload import SimLayer


def test_layer_a_every_dataflow_by_hand(scalesim_files):
    topo, _ = scalesim_files
    a = read_topology(topo)[0]
    # a: 5x5x3 input, 2x2 filter, 5 filters, stride 2. SCALE-Sim's output size ceil((5 - 2 + 2) / 2) = 3, so
    # M = 3 x 3 = 9 output pixels, K = 2 x 2 x 3 = 12, N = 5. Array Ra = 4 rows, Ca = 3 columns.
    assert a.gemm() == (1, 9, 12, 5)
    # ws: Sr = K, Sc = N, T = M: ceil(12/4) x ceil(5/3) = 3 x 2 = 6 folds of 2*4 + 3 + 9 - 2 = 18 cycles
    assert map_layer(a, "ws", 4, 3).cycles == 6 * 18 - 1 == 107
    # os: Sr = M, Sc = N, T = K: ceil(9/4) x ceil(5/3) = 3 x 2 = 6 folds of 4 + 3 + 12 - 2 = 17 cycles
    assert map_layer(a, "os", 4, 3).cycles == 6 * 17 - 1 == 101
    # is: Sr = K, Sc = M, T = N: ceil(12/4) x ceil(9/3) = 3 x 3 = 9 folds of 2*4 + 3 + 5 - 2 = 14 cycles
    assert map_layer(a, "is", 4, 3).cycles == 9 * 14 - 1 == 125


def test_layer_b_every_dataflow_by_hand(scalesim_files):
    topo, _ = scalesim_files
    b = read_topology(topo)[1]
    # b: 6x6x2 input, 3x3 filter, 7 filters, stride 1: M = 4 x 4 = 16, K = 18, N = 7
    assert b.gemm() == (1, 16, 18, 7)
    assert map_layer(b, "ws", 4, 3).cycles == 5 * 3 * (8 + 3 + 16 - 2) - 1 == 374  # ceil(18/4) x ceil(7/3) folds
    assert map_layer(b, "os", 4, 3).cycles == 4 * 3 * (4 + 3 + 18 - 2) - 1 == 275  # ceil(16/4) x ceil(7/3) folds
    assert map_layer(b, "is", 4, 3).cycles == 5 * 6 * (8 + 3 + 7 - 2) - 1 == 479  # ceil(18/4) x ceil(16/3) folds


def test_gemm_and_one_fold():
    # a 2x3 @ 3x2 product fits one fold of a 4x4 array: ws = 2*4 + 4 + M - 2 with M = 2, minus 1
    g = SimLayer("g", "gemm", m=2, k=3, n=2)
    assert map_layer(g, "ws", 4, 4).cycles == 8 + 4 + 2 - 2 - 1 == 11
    assert map_layer(g, "os", 4, 4).cycles == 4 + 4 + 3 - 2 - 1 == 8
    assert map_layer(g, "is", 4, 4).cycles == 8 + 4 + 2 - 2 - 1 == 11


def test_block_diagonal_tiles_pack_small_groups():
    # 8 groups of 3x1 blocks on a 4x4 array: rows 0..23 -> 6 row tiles; each touches at most 2 groups that sit
    # in the same column tile, except tile rows 12..15 (groups 4, 5) and so on: all in column tile 0 or 1
    assert block_diagonal_tiles(1, 10, 10, 4, 4) == 3 * 3
    assert block_diagonal_tiles(8, 3, 1, 4, 4) == 6
    assert block_diagonal_tiles(2, 4, 4, 4, 4) == 2  # two blocks on the diagonal, two empty tiles skipped


def test_block_diagonal_tiles_by_period_match_the_count_tile_by_tile(monkeypatch):
    # beyond MAX_TILES_COUNTED row tiles the count comes from one period of the pattern: the same number
    rng = random.Random(0)
    cases = [(rng.randint(2, 300), rng.choice((rng.randint(1, 20), rng.randint(1, 300))), rng.randint(1, 50),
              rng.choice((1, 3, 4, 8, 12, 32, 128)), rng.choice((1, 3, 5, 8, 16, 128))) for _ in range(3000)]
    want = [block_diagonal_tiles(*c) for c in cases]
    monkeypatch.setattr(systolic, "MAX_TILES_COUNTED", 0)
    assert [block_diagonal_tiles(*c) for c in cases] == want


def test_huge_grouped_layers_map_without_a_tile_per_row():
    # 64 depthwise 3x3 filters over a 1e6 x 1e6 map, os: 64 blocks of m ~ 1e12 output pixels x 1 column (2e12 row
    # tiles, too many to list). m = 4 (mod 32): tiles cross block boundaries, but not the one between blocks 31 and
    # 32 (at 32 m), so each row tile touches one column tile: 64 m / 32 tiles
    m = (10**6 - 2) ** 2
    assert block_diagonal_tiles(64, m, 1, 32, 32) == 2 * m
    dw = SimLayer("dw", "dwconv", in_h=10**6, in_w=10**6, in_c=64, out_h=10**6 - 2, out_w=10**6 - 2, filt_h=3,
                  filt_w=3, num_filters=64, groups=64)
    mp = map_layer(dw, "os", 32, 32)  # the dense mapping is cheaper: ceil(m / 32) x 2 folds
    assert not mp.packed and mp.folds == -(-m // 32) * 2
    assert block_diagonal_tiles(10**9, 9, 1, 32, 32) == 281_250_000  # 9e9 rows / 32, one column tile each


def test_batch_streams_more_rows():
    conv = SimLayer("c", "conv", in_h=8, in_w=8, in_c=16, out_h=8, out_w=8, filt_h=3, filt_w=3, num_filters=32,
                    padding=(1, 1))
    one, four = map_layer(conv, "ws", 16, 16), map_layer(conv.with_batch(4), "ws", 16, 16)
    # same folds, each streams 4 x 64 output pixels instead of 64
    assert four.folds == one.folds
    assert four.fold_cycles - one.fold_cycles == 3 * 64


def test_width_passes_and_sparsity_shorten_or_lengthen():
    g = SimLayer("g", "gemm", m=64, k=128, n=64)
    base = map_layer(g, "ws", 16, 16)
    assert map_layer(g, "ws", 16, 16, bits=16, word_bits=8).cycles == 4 * base.cycles
    half = map_layer(g, "ws", 16, 16, sparsity=Sparsity.parse("2:4"))
    assert half.k == 64 and half.folds == base.folds // 2


@pytest.mark.parametrize("spec,density", [("2:4", 0.5), ("1:4", 0.25), (0.75, 0.25), ("0.5", 0.5)])
def test_sparsity_parse(spec, density):
    assert Sparsity.parse(spec).density == pytest.approx(density)


@pytest.mark.parametrize("bad", ["3:2", "0:4", "a:b", "1.5", "-0.1", "half"])
def test_sparsity_parse_rejects(bad):
    with pytest.raises(ValueError, match="sparsity"):
        Sparsity.parse(bad)
