"""Fuzzing chip profiles (``load_chip`` on YAML with and without an ``array:`` section): 2,000 seeded text and
structure mutations of the built-in profiles, each parsed or refused with a one-line ``ValueError`` naming the file."""

from __future__ import annotations

from tests._fuzz import assert_clean, run_in_subprocess


def test_chip_profiles_survive_2000_mutations():
    assert_clean(run_in_subprocess("chip", mutations=2000, seed=0, timeout_s=300), 2000)
