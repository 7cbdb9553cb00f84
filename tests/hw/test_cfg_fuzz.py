"""Fuzzing SCALE-Sim ``.cfg`` files, through ``parse_scalesim_cfg`` and ``load_chip``: 2,000 seeded mutations (odd
Bandwidth values among them), each parsed or refused with a one-line ``ValueError`` naming the file."""

from __future__ import annotations

from tests._fuzz import assert_clean, run_in_subprocess


def test_scalesim_cfgs_survive_2000_mutations():
    assert_clean(run_in_subprocess("cfg", mutations=2000, seed=0, timeout_s=300), 2000)
