"""Fuzzing ``capture_onnx``: 2,000 seeded mutations of small exported networks, as bytes and as ``ModelProto``
structures (wrong or zero dims, missing initializers, bad attributes, unknown ops, broken wiring), each captured or
refused with a one-line ``OnnxError`` naming the file; no other exception, no hang, no crash."""

from __future__ import annotations

import pytest

from tests._fuzz import assert_clean, run_in_subprocess

pytest.importorskip("onnx")


def test_onnx_files_survive_2000_mutations():
    assert_clean(run_in_subprocess("onnx", mutations=2000, seed=0, timeout_s=400), 2000)
