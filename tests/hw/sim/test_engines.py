"""The engines' registry, shared records and input checks."""

from __future__ import annotations

import json
import math

import pytest

from chipfit.hw.sim.binary import XNOR_ENGINE
from chipfit.hw.sim.crossbar import ISAAC_LIKE, PRIME_LIKE
from chipfit.hw.sim.engines import ENGINES, EngineLayer, EngineResult, check_layers, load_engine, simulate_engine
from chipfit.hw.sim.workload import SimLayer

LAYER = SimLayer("a", "conv", in_h=4, in_w=4, in_c=100, out_h=4, out_w=4, num_filters=50)


def test_registry():
    assert dict(ENGINES) == {"isaac-like": ISAAC_LIKE, "prime-like": PRIME_LIKE, "xnor": XNOR_ENGINE}
    assert load_engine("ISAAC_like") is ISAAC_LIKE
    assert load_engine(XNOR_ENGINE) is XNOR_ENGINE


def test_unknown_engine_says_what_exists():
    with pytest.raises(ValueError, match=r"did you mean 'isaac-like'.*prime-like"):
        load_engine("isac-like")
    with pytest.raises(ValueError, match="cannot use int"):
        load_engine(3)


def test_simulate_engine_dispatches():
    assert simulate_engine([LAYER], "xnor", batch=2).layers[0].unit == "int8"
    r = simulate_engine([LAYER], "isaac-like")
    assert r.engine == "isaac-like" and r.pipelined


def test_check_layers():
    with pytest.raises(ValueError, match="non-empty list"):
        check_layers(LAYER)
    with pytest.raises(ValueError, match="must all be SimLayer"):
        check_layers([LAYER, "conv"])
    with pytest.raises(ValueError, match="unknown kind"):
        check_layers([SimLayer("x", "deconv")])
    with pytest.raises(ValueError, match="at least 1"):
        check_layers([SimLayer("x", "gemm", m=0, k=3, n=3)])
    with pytest.raises(ValueError, match="multiples of groups"):
        check_layers([SimLayer("x", "conv", in_c=3, num_filters=4, groups=2)])


def test_record_totals_and_json():
    a = EngineLayer("a", "conv", "xnor", 10, 2e-6, 3e-9, {"xnor": 1e-9, "dram": 2e-9})
    b = EngineLayer("b", "pool", "vector", 5, 1e-6, 0.0, {"vector": 0.0})
    r = EngineResult("t", (a, b), batch=2, pipelined=True)
    assert r.latency_s == pytest.approx(3e-6) and r.period_s == pytest.approx(2e-6)
    assert r.inferences_per_s == pytest.approx(1e6)
    assert r.energy_by_part() == {"xnor": 1e-9, "dram": 2e-9, "vector": 0.0}
    empty = EngineResult("e", (b,))
    assert math.isinf(empty.inferences_per_j)
    d = json.loads(json.dumps(empty.to_dict()))
    assert d["total"]["inferences_per_j"] is None
    assert "t: 2 layers (1 xnor, 1 vector)" in r.summary()
