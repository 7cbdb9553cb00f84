"""simulate(): properties that must hold, totals, multi-chip pipelines, errors that name what is wrong."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

import chipfit
from chipfit.cost import Precision
from chipfit.hw.sim import LayerFitsNoBufferError, SimLayer, load_arch, simulate
from chipfit.hw.sim.multichip import balanced_cuts


def _conv(name, h, c, n, r=3, stride=1, groups=1, pad=1):
    e = (h + 2 * pad - r) // stride + 1
    return SimLayer(name, "dwconv" if groups > 1 and groups == c else "conv", in_h=h, in_w=h, in_c=c, out_h=e,
                    out_w=e, filt_h=r, filt_w=r, num_filters=n, stride=(stride, stride), padding=(pad, pad),
                    groups=groups)


NET = [_conv("c1", 32, 3, 16, stride=2), _conv("c2", 16, 16, 32), _conv("dw", 16, 32, 32, groups=32),
       _conv("pw", 16, 32, 64, r=1, pad=0), SimLayer("relu", "eltwise", vector_ops=16 * 16 * 64, in_elems=16 * 16 * 64,
                                                     out_elems=16 * 16 * 64),
       SimLayer("fc", "gemm", m=1, k=64, n=10)]


def test_totals_add_up_and_json_keys():
    res = simulate(NET, "edge-npu")
    tot = res.total
    assert tot["cycles"] == sum(x.total_cycles for x in res.layers)
    assert tot["time_s"] == pytest.approx(tot["cycles"] / 800e6)
    assert tot["inferences_per_s"] == pytest.approx(1 / tot["time_s"])
    assert tot["macs"] == sum(x.macs for x in NET)
    data = json.loads(res.to_json())
    assert set(data) >= {"layers", "total"}
    for key in ("name", "compute_cycles", "stall_cycles", "dram_read_bytes", "dram_write_bytes", "sram_read_bytes",
                "sram_write_bytes", "energy_j"):
        assert key in data["layers"][0]
    assert res.layers[4].macs == 0 and res.layers[4].compute_cycles == 16 * 16 * 64 // 32  # 32 vector lanes


def test_more_bandwidth_is_never_slower():
    arch = load_arch("edge-npu")
    for df in ("ws", "os", "is"):
        prev = None
        for bw in (0.5e9, 2e9, 8e9, 32e9, None):
            res = simulate(NET, dataclasses.replace(arch, dram_bandwidth_bytes_per_s=bw), dataflow=df)
            cycles = [x.total_cycles for x in res.layers]
            if prev is not None:
                assert all(a <= b for a, b in zip(cycles, prev, strict=True))
            prev = cycles
        assert res.total["stall_cycles"] == 0  # unlimited bandwidth


def test_higher_sparsity_never_more_macs_or_cycles():
    for arch, levels in (("eyeriss-v1", [None, 0.25, 0.5, 0.75, 0.9]), ("edge-npu", [None, "3:4", "2:4", "1:4"])):
        prev = None
        for sp in levels:
            res = simulate(NET, arch, sparsity=sp)
            now = [(x.macs, x.compute_cycles) for x in res.layers]
            if prev is not None:
                assert all(m <= pm and c <= pc for (m, c), (pm, pc) in zip(now, prev, strict=True))
            prev = now
    assert simulate(NET, "edge-npu", sparsity="2:4").total["macs"] < simulate(NET, "edge-npu").total["macs"]


def test_depthwise_never_costs_more_cycles_than_dense():
    rng = random.Random(0)
    for _ in range(12):
        h, c, r, s = rng.randint(5, 40), rng.choice([3, 8, 16, 32, 64, 96, 200]), rng.choice([3, 5]), rng.choice([1, 2])
        dw, dense = _conv("dw", h, c, c, r=r, stride=s, groups=c), _conv("d", h, c, c, r=r, stride=s)
        for arch in ("edge-npu", "tpu-v1", "eyeriss-v1"):
            for df in ("ws", "os", "is"):
                a = simulate([dw], arch, dataflow=df).layers[0]
                b = simulate([dense], arch, dataflow=df).layers[0]
                assert a.compute_cycles <= b.compute_cycles, (h, c, r, s, arch, df)


def test_chips_conserve_macs_and_balance():
    one = simulate(NET, "edge-npu")
    for k in (2, 3, 4):
        res = simulate(NET, "edge-npu", chips=k)
        p = res.pipeline
        assert p.macs == one.total["macs"] == res.total["macs"]
        assert [x.chip for x in res.layers] == sorted(x.chip for x in res.layers)
        assert len(p.stages) == k
        assert p.inferences_per_s >= one.total["inferences_per_s"] * 0.999 or p.stages[0].transfer_s > 0
        assert p.latency_s >= max(s.compute_s for s in p.stages)


def test_balanced_cuts():
    assert balanced_cuts([5, 5, 5, 5], 2) == [(0, 1), (2, 3)]
    assert balanced_cuts([10, 1, 1, 1, 10], 3) == [(0, 0), (1, 3), (4, 4)]
    assert balanced_cuts([3, 3], 5) == [(0, 0), (1, 1)]


def test_dadiannao_link_used_when_none_given():
    arch = dataclasses.replace(load_arch("edge-npu"), link_bandwidth_bytes_per_s=None)
    res = simulate(NET, arch, chips=2)
    assert res.pipeline.link_bytes_per_s == 4 * 6.4e9
    assert any("DaDianNao" in n for n in res.notes)


def test_batch_and_bits():
    one, four = simulate(NET, "edge-npu"), simulate(NET, "edge-npu", batch=4)
    assert four.total["macs"] == 4 * one.total["macs"]
    assert four.total["cycles"] < 4 * one.total["cycles"]  # weights loaded once for four images
    assert simulate(NET, "edge-npu", precision="int16").total["compute_cycles"] > one.total["compute_cycles"]


@pytest.mark.parametrize("wbits", [1, 4])
def test_narrow_weights_shrink_weight_bytes_only(wbits):
    full, narrow = simulate(NET, "edge-npu"), simulate(NET, "edge-npu", precision=f"w{wbits}a8")
    assert narrow.total["compute_cycles"] == full.total["compute_cycles"]  # an 8-bit array multiplies at 8 bits
    for a, b in zip(full.layers, narrow.layers, strict=True):
        filt = a.detail.get("filter_dram_reads", 0)
        assert a.dram_read_bytes - b.dram_read_bytes == pytest.approx(filt * (8 - wbits) / 8)
        assert a.dram_write_bytes == b.dram_write_bytes
    assert narrow.total["energy_j"] < full.total["energy_j"]
    assert narrow.to_dict()["weight_bits"] == wbits
    with pytest.raises(ValueError, match="weight_bits must be one of"):
        simulate(NET, "edge-npu", precision="w3a8")


def test_layer_weight_bits_override_single_layers():
    """A binary network whose first conv and classifier keep 8-bit weights: only their weight bytes change."""
    binary = chipfit.simulate("quadranet_s28", "edge-npu", precision="w1a8")
    mixed = chipfit.simulate("quadranet_s28", "edge-npu",
                             precision=Precision("w1a8", 1, 8, "int8", {"stem.0": 8, "head.fc": 8}))
    changed = {a.name: b.dram_read_bytes - a.dram_read_bytes for a, b in zip(binary.layers, mixed.layers,
                                                                                strict=True)
               if a.dram_read_bytes != b.dram_read_bytes}
    assert set(changed) == {"stem.0:conv", "head.fc:linear"}
    assert changed["stem.0:conv"] == pytest.approx(24 * 1 * 2 * 2 * 7 / 8)  # 96 weights, 7 more bits each
    assert changed["head.fc:linear"] == pytest.approx(192 * 10 * 7 / 8)
    with pytest.raises(ValueError, match="weight_bits of stem.0 must be one of"):
        chipfit.simulate("quadranet_s28", "edge-npu", precision=Precision("w1a8", 1, 8, "int8", {"stem.0": 3}))


def test_layer_that_fits_no_buffer_is_named():
    arch = dataclasses.replace(load_arch("tpu-v1"), filter_sram_bytes=16 * 1024)
    with pytest.raises(LayerFitsNoBufferError, match=r"layer 'big' fits no buffer: one ws fold keeps 256 x 256 "
                                                      r"words .* filter SRAM"):
        simulate([SimLayer("big", "gemm", m=64, k=512, n=512)], arch)
    tiny = dataclasses.replace(load_arch("edge-npu"), ifmap_sram_bytes=64)
    with pytest.raises(ValueError, match="layer 'fc'"):
        simulate([SimLayer("fc", "gemm", m=4, k=8, n=8)], tiny)


def test_bad_options():
    with pytest.raises(ValueError, match="does not exploit unstructured sparsity"):
        simulate(NET, "edge-npu", sparsity=0.5)
    with pytest.raises(ValueError, match="bits must be one of"), pytest.warns(DeprecationWarning):
        simulate(NET, "edge-npu", bits=6)
    with pytest.raises(ValueError, match="activations of 4, 8, 16, 32 bits, not 1 .for binary weights use w1a8"):
        simulate(NET, "edge-npu", precision="binary")
    with pytest.raises(ValueError, match="give the target"):
        simulate(NET)
    with pytest.raises(ValueError, match="dataflow must be"):
        simulate(NET, "edge-npu", dataflow="rs")
