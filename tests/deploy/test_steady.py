"""The canary that tells a benchmark the machine has slowed down."""

from __future__ import annotations

import pytest

from chipfit.deploy.steady import Canary


def _timer(times):
    it = iter(times)
    return lambda: next(it)


def test_a_steady_machine_is_not_waited_on():
    slept = []
    c = Canary(_timer([1.0, 1.02, 0.99, 1.03]), sleep=slept.append)
    assert c.wait() == (True, pytest.approx(1.03 / 0.99)) and slept == []


def test_a_slow_spell_is_waited_out():
    slept, said = [], []
    c = Canary(_timer([1.0, 1.0, 1.0, 1.5, 1.4, 1.05]), wait_s=10, sleep=slept.append)
    steady, ratio = c.wait(said.append)
    assert steady and ratio == pytest.approx(1.05) and slept == [10, 10] and c.waited_s == 20
    assert "50% slower" in said[0]


def test_a_machine_that_stays_slow_is_reported_after_the_longest_wait():
    c = Canary(_timer([1.0] * 3 + [1.6] * 10), wait_s=10, max_wait_s=30, sleep=lambda s: None)
    assert c.wait() == (False, pytest.approx(1.6)) and c.history == [pytest.approx(1.6)] * 4


def test_a_faster_run_becomes_the_reference():
    c = Canary(_timer([2.0, 2.0, 2.0, 1.0, 1.5]), sleep=lambda s: None, max_wait_s=0)
    assert c.ratio() == 1.0 and c.fastest == 1.0 and c.ratio() == 1.5


def test_an_onnx_canary_times_a_file(tmp_path):
    from torch import nn

    from chipfit.deploy.fusion import export_sample

    path = export_sample(nn.Conv2d(4, 8, 3), [[1, 4, 16, 16]], tmp_path / "c.onnx")
    c = Canary.onnx(path, tolerance=10.0)
    assert c.fastest > 0 and c.wait()[0]


def test_tolerance_must_be_positive():
    with pytest.raises(ValueError, match="tolerance"):
        Canary(lambda: 1.0, tolerance=0)
