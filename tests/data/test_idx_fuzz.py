"""Fuzzing the idx reader (``read_idx``, and ``load_fashion_mnist`` over it): 2,000 seeded mutations of raw and gzip
files, each parsed or refused with a one-line ``IdxError`` naming the file; no other exception, no hang."""

from __future__ import annotations

from tests._fuzz import assert_clean, run_in_subprocess


def test_idx_files_survive_2000_mutations():
    assert_clean(run_in_subprocess("idx", mutations=2000, seed=0, timeout_s=300), 2000)
