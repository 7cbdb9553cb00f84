"""Latency of search-space points: budgets as text, targets, whole-network estimates, tables of parts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from chipfit.cost import count
from chipfit.models.build import build_model
from chipfit.nas import SpaceError, load_space
from chipfit.nas.latency import (
    LatencyModel,
    LatencyTable,
    Target,
    format_energy,
    format_latency,
    parse_energy,
    parse_latency,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SPACES = ("quadranet_s28", "mbconv_s28")
TARGETS = (Target("edge-npu"), Target("edge-npu", "simulator"), Target("cortex-a76", precision="int8"),
           Target("host", fused=False))


@pytest.fixture(scope="module", params=SPACES)
def model(request) -> LatencyModel:
    """One model per space, shared by the tests: its tables keep their parts from one test to the next."""
    return LatencyModel(load_space(request.param), TARGETS)


def _archs(space, n: int, seed: int = 0):
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)] + [space.largest()]


# --- budgets as text ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("0.4ms", 4e-4), ("2 ms", 2e-3), ("300us", 3e-4), ("300µs", 3e-4),
                                               ("1.5s", 1.5), ("3e-3s", 3e-3), (" 250ns ", 2.5e-7)])
def test_parse_latency(text, seconds):
    assert parse_latency(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(("text", "joules"), [("2mJ", 2e-3), ("500uJ", 5e-4), ("1J", 1.0), ("40 nJ", 4e-8)])
def test_parse_energy(text, joules):
    assert parse_energy(text) == pytest.approx(joules, rel=1e-12)


@pytest.mark.parametrize("x", [1.5, 4e-4, 3.25e-7, 2.5e-9, 123.456, 1e-3])
def test_format_and_parse_round_trip(x):
    assert parse_latency(format_latency(x)) == pytest.approx(x, rel=1e-12)
    assert parse_energy(format_energy(x)) == pytest.approx(x, rel=1e-12)


def test_format_picks_a_readable_unit():
    assert (format_latency(4e-4), format_latency(2.0), format_energy(2e-3), format_energy(5e-7)) == (
        "400us", "2s", "2mJ", "500nJ")


@pytest.mark.parametrize(("text", "match"), [("0.4", "'0.4' has no unit.*units: s, ms, us"),
                                             (0.004, "0.004 has no unit"),
                                             ("2 parsecs", "unknown unit 'parsecs'.*units: s, ms"),
                                             ("fast", "'fast' is not a number with a unit"),
                                             ("-1ms", "> 0"), ("0s", "> 0")])
def test_parse_latency_refusals_name_the_text_and_the_units(text, match):
    with pytest.raises(ValueError, match=match):
        parse_latency(text)


def test_parse_energy_refusals():
    with pytest.raises(ValueError, match="'2' has no unit.*units: J, mJ, uJ"):
        parse_energy("2")
    with pytest.raises(ValueError, match="unknown unit 'kJ'"):
        parse_energy("2kJ")
    with pytest.raises(ValueError, match="unknown unit 'ms'"):
        parse_energy("2ms")


# --- targets ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"hw": "edge-npu", "source": "guess"}, "source 'guess' is not one of roofline, simulator, measured, predicted"),
    ({"hw": "host", "source": "predicted"}, "needs a predictor: give predictor=DIR"),
    ({"hw": "edge-npu", "source": "measured"}, "measured latency runs on this machine only: use hw='host'"),
    ({"hw": "host", "source": "measured", "energy_budget_j": 1e-3}, "gives no energy"),
    ({"hw": "host", "source": "measured", "precision": "int8"}, "fp32"),
    ({"hw": "edge-npu", "predictor": "pred"}, "source 'predicted' only"),
    ({"hw": "edge-npu", "latency_budget_s": "2ms"}, "latency_budget_s must be a number > 0.*parse_latency"),
    ({"hw": "edge-npu", "energy_budget_j": -1.0}, "energy_budget_j must be a number > 0"),
    ({"hw": "edge-npu", "precision": "int7x"}, "unknown precision 'int7x'"),
    ({"hw": "host", "source": "measured", "runtime": "tvm"}, "runtime 'tvm' is not one of ort, openvino"),
    ({"hw": ""}, "chip name"),
])
def test_target_validation_messages(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Target(**kwargs)


def test_target_label_and_dict_round_trip():
    assert Target("edge-npu", "simulator").label() == "edge-npu/simulator"
    assert Target("cortex-a76", precision="INT8", fused=False).label() == "cortex-a76/roofline/int8/unfused"
    assert Target("chips/my-npu.yaml").label() == "my-npu/roofline"
    t = Target("edge-npu", "simulator", latency_budget_s=2e-3, energy_budget_j=1e-4, precision="int8")
    assert Target.from_dict(t.to_dict()) == t
    text = Target.from_dict({"hw": "edge-npu", "latency_budget_s": "2ms", "energy_budget_j": "100uJ"})
    assert text.latency_budget_s == pytest.approx(2e-3) and text.energy_budget_j == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="unknown field.*'budget'"):
        Target.from_dict({"hw": "edge-npu", "budget": "2ms"})


def test_targets_are_checked_against_their_chips_up_front():
    space = load_space("mbconv_s28")
    with pytest.raises(ValueError, match="target cortex-a76/simulator: .*no modelled array"):
        LatencyModel(space, Target("cortex-a76", "simulator"))
    with pytest.raises(ValueError, match="target edge-npu/roofline/fp32: chip edge-npu has no fp32 peak"):
        LatencyModel(space, Target("edge-npu", precision="fp32"))
    with pytest.raises(ValueError, match="unknown chip 'edge-nuc'"):
        LatencyModel(space, Target("edge-nuc"))
    with pytest.raises(ValueError, match="share the label 'edge-npu/roofline'"):
        LatencyModel(space, [Target("edge-npu"), Target("edge-npu", latency_budget_s=1e-3)])
    with pytest.raises(ValueError, match="not a sum of parts"):
        LatencyTable(space, Target("host", "measured"))


# --- whole networks -----------------------------------------------------------------------------------------------


def test_model_estimates_every_target_and_caches(model):
    arch = _archs(model.space, 1, seed=7)[0]
    before = (model.evaluations, model.cache_hits)
    first = model.evaluate(arch)
    assert list(first) == [t.label() for t in TARGETS]
    assert {e.source for e in first.values()} == {"roofline", "simulator"}
    assert all(e.latency_s > 0 and e.energy_j > 0 for e in first.values())
    assert first["cortex-a76/roofline/int8"].precision == "int8"
    assert first["edge-npu/roofline"].precision == "int8"  # the chip has no fp32: its own dtype, as profile picks
    assert first["host/roofline/unfused"].fused is False
    second = model.evaluate(arch)
    assert (model.evaluations, model.cache_hits) == (before[0] + 1, before[1] + 1)
    assert {k: (v.latency_s, v.energy_j) for k, v in second.items()} == {
        k: (v.latency_s, v.energy_j) for k, v in first.items()}
    assert model.seconds > 0


def test_model_matches_the_roofline_of_the_built_network(model):
    """The cached estimate is the roofline of build_model(space.expand(arch)) costed directly."""
    from chipfit.hw import load_chip, roofline

    arch = _archs(model.space, 1, seed=3)[0]
    s = model.space.input_size(arch)
    prof = count(build_model(model.space.expand(arch)), (1, model.space.in_chans, s, s), "int8")
    direct = roofline.estimate(prof, load_chip("edge-npu"), fused=True)
    assert model.evaluate(arch)["edge-npu/roofline"].latency_s == pytest.approx(direct.latency_s, rel=1e-12)


def test_budgets():
    space = load_space("quadranet_s28")
    arch = space.largest()
    lat = LatencyModel(space, Target("edge-npu")).evaluate(arch)["edge-npu/roofline"]
    assert LatencyModel(space, Target("edge-npu", latency_budget_s=lat.latency_s * 2)).feasible(arch)
    assert not LatencyModel(space, Target("edge-npu", latency_budget_s=lat.latency_s / 2)).feasible(arch)
    assert not Target("edge-npu", energy_budget_j=lat.energy_j / 2).fits(lat)


def test_an_arch_of_another_space_is_refused(model):
    other = load_space("mbconv_s28" if model.space.name == "quadranet_s28" else "quadranet_s28")
    arch = other.sample(random.Random(0))
    with pytest.raises(SpaceError):
        model.evaluate(arch)
    with pytest.raises(SpaceError):
        model.table(TARGETS[0]).latency(arch)


# --- tables of parts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.label())
def test_table_sums_to_the_whole_network(model, target):
    """Roofline and simulator are per-layer models and the parts are the network's own layers, so the table's sum
    is the whole-network estimate up to rounding. Measured on 7 archs of each s28 space x 9 targets (edge-npu,
    cortex-a76, host, a100, myriad-x roofline, fused and not; edge-npu, tpu-v1, eyeriss-v1 simulator): largest
    |difference| 1.6e-15 relative for latency, 5.6e-16 for energy; 1e-9 leaves room for summation order only.
    (Had the parts' ends been costed as network inputs and outputs, always through DRAM, edge-npu's roofline
    would differ by 5% on quadranet_s28 and 16% on mbconv_s28.)"""
    table = model.table(target)
    for arch in _archs(model.space, 3, seed=11):
        whole = model.evaluate(arch)[target.label()]
        assert abs(table.check(arch, whole)) < 1e-9
        assert table.energy(arch) == pytest.approx(whole.energy_j, rel=1e-9)


def test_table_parts_are_the_network(model):
    """Closed-form cross-check with the cost stage: the parts' MACs add up to the whole network's exactly."""
    table = model.table(TARGETS[0])
    for arch in _archs(model.space, 3, seed=5):
        s = model.space.input_size(arch)
        whole = count(build_model(model.space.expand(arch)), (1, model.space.in_chans, s, s))
        assert table.macs(arch) == whole.total.macs


def _one_hot(space, arch, dtype=torch.float32):
    return [[torch.nn.functional.one_hot(torch.tensor(k), len(st.slot_ops(j))).to(dtype)
             for j, k in enumerate(ops)] for st, ops in zip(space.stages, arch.ops, strict=True)]


def test_expected_with_one_hot_weights_is_the_latency(model):
    table = model.table(TARGETS[1])
    for arch in _archs(model.space, 2, seed=13):
        for dtype in (torch.float32, torch.float64):
            exp = table.expected(arch, _one_hot(model.space, arch, dtype))
            assert exp.dtype == torch.float64
            assert float(exp) == pytest.approx(table.latency(arch), rel=1e-12)
        e = table.expected(arch, _one_hot(model.space, arch), metric="energy")
        assert float(e) == pytest.approx(table.energy(arch), rel=1e-12)


def test_expected_is_differentiable(model):
    """d expected / d probs[i][j][k] = slot_latencies[i][j][k]: the gradient is the table itself."""
    table = model.table(TARGETS[0])
    arch = _archs(model.space, 1, seed=17)[0]
    logits = [[torch.randn(len(st.slot_ops(j)), dtype=torch.float64, requires_grad=True) for j in range(st.slots)]
              for st in model.space.stages]
    probs = [[torch.softmax(x, 0) for x in s] for s in logits]
    for s in probs:
        for p in s:
            p.retain_grad()
    total = table.expected(arch, probs)
    total.backward()
    lat = table.slot_latencies(arch)
    for i, s in enumerate(probs):
        for j, p in enumerate(s):
            assert np.allclose(p.grad.numpy(), lat[i][j], rtol=1e-12, atol=0)
    moved = [x.grad for s in logits for x in s if len(x) > 1]
    assert moved and all(g is not None and torch.isfinite(g).all() for g in moved)
    assert any(g.abs().sum() > 0 for g in moved)
    uniform = [[torch.full((len(v),), 1 / len(v), dtype=torch.float64) for v in s] for s in lat]
    mean = table.constant(arch) + sum(np.mean(v) for s in lat for v in s)
    assert float(table.expected(arch, uniform)) == pytest.approx(mean, rel=1e-12)


def test_slot_latencies_shape_and_identity(model):
    table = model.table(TARGETS[0])
    arch = model.space.largest()
    lat = table.slot_latencies(arch)
    for st, s in zip(model.space.stages, lat, strict=True):
        assert len(s) == st.slots
        for j, v in enumerate(s):
            ops = st.slot_ops(j)
            assert len(v) == len(ops)
            assert all((x == 0) == o.is_identity for x, o in zip(v, ops, strict=True))
    assert table.constant(arch) > 0


def test_expected_refuses_badly_shaped_weights(model):
    table = model.table(TARGETS[0])
    arch = model.space.largest()
    probs = _one_hot(model.space, arch)
    probs[1][0] = torch.ones(2)
    with pytest.raises(ValueError, match=r"probs\[1\]\[0\]: a 1-D tensor of \d+ weights"):
        table.expected(arch, probs)
    with pytest.raises(ValueError, match="stages given"):
        table.expected(arch, probs[:-1])
    with pytest.raises(ValueError, match="metric must be one of latency, energy"):
        table.expected(arch, _one_hot(model.space, arch), metric="power")


def test_build_for_one_widths_choice_and_reuse():
    space = load_space("quadranet_s28")
    arch = space.sample(random.Random(2))
    table = LatencyTable.build(space, Target("edge-npu"), arch)
    n = table.parts
    # stem, 4 entries, head, and per stage the 6 non-identity blocks (the slots of a stage share them)
    assert n == 1 + 4 + 1 + 4 * 6
    again = LatencyTable.build(space, Target("edge-npu"), arch, reuse=table)
    assert again.parts == n and again.latency(arch) == table.latency(arch)
    assert again.add(arch) == 0
    with pytest.raises(ValueError, match="another space or target"):
        LatencyTable.build(space, Target("cortex-a76"), arch, reuse=table)


def test_predicted_table_counts_the_offset_once(tmp_path):
    """A predictor (synthetic, fitted here) sums kernels plus one offset per network: parts add up once the offset
    is counted in the constant only."""
    pytest.importorskip("lightgbm")
    pytest.importorskip("onnxruntime")
    from chipfit.deploy.build import fit_all
    from chipfit.deploy.kernels import FEATURES, FusionRules
    from chipfit.deploy.predictor import Predictor, environment

    rng = np.random.default_rng(0)
    x = np.zeros((40, len(FEATURES)))
    x[:, FEATURES.index("macs")] = 10 ** rng.uniform(3, 8, 40)
    x[:, FEATURES.index("out_elems")] = 10 ** rng.uniform(2, 6, 40)
    y = 2e-9 * x[:, FEATURES.index("macs")] + 1e-6
    rows = [{"type": t, "features": list(r), "s": float(s)} for t in ("conv", "dwconv")
            for r, s in zip(x, y, strict=True)]
    offset = 5e-5
    Predictor({"environment": environment("ort", 1), "fusion": FusionRules("ort", {}).to_dict(),
               "correction": {"scales": {}, "per_kernel_s": 1e-6, "per_view_s": 0.0, "offset_s": offset}},
              fit_all(rows)).save(tmp_path / "pred")
    space = load_space("mbconv_s28")
    target = Target("host", "predicted", predictor=str(tmp_path / "pred"))
    model = LatencyModel(space, target)
    table = model.table(target)
    for arch in _archs(space, 2, seed=1):
        whole = model.evaluate(arch)[target.label()]
        assert whole.source == "predicted" and whole.latency_s > offset
        assert abs(table.check(arch, whole)) < 1e-9
    with pytest.raises(ValueError, match="gives no energy"):
        table.energy(arch)
    with pytest.raises(ValueError, match="built for runtime 'ort', not 'openvino'"):
        LatencyModel(space, Target("host", "predicted", predictor=str(tmp_path / "pred"), runtime="openvino"))
