"""Fuzzing ``read_topology``: 2,000 seeded line, field and byte mutations of SCALE-Sim topology CSVs (conv, GEMM,
sparse), each parsed or refused with a one-line ``ValueError`` naming the file; no other exception, no hang."""

from __future__ import annotations

from tests._fuzz import assert_clean, run_in_subprocess


def test_topology_csvs_survive_2000_mutations():
    assert_clean(run_in_subprocess("topology", mutations=2000, seed=0, timeout_s=300), 2000)
