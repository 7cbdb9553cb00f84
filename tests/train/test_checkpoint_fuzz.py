"""Fuzzing checkpoints (``load_model`` and ``load_checkpoint``): 2,000 seeded mutations of a training checkpoint's
bytes and contents (spec, config, weights), each loaded or refused with a one-line ``CheckpointError`` naming the
file; no other exception, no hang, no huge allocation."""

from __future__ import annotations

from tests._fuzz import assert_clean, run_in_subprocess


def test_checkpoints_survive_2000_mutations():
    assert_clean(run_in_subprocess("checkpoint", mutations=2000, seed=0, timeout_s=600), 2000)
