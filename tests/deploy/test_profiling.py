"""Kernel times from ONNX Runtime's profiler: node by node in a whole network, paired with chipfit's kernels."""

from __future__ import annotations

import json

import pytest
from torch import nn

from chipfit.cost import count
from chipfit.deploy.build import MIN_IN_NETWORK, NetworkLog, fit_all
from chipfit.deploy.fusion import executed_ops, export_sample, nchwc_block
from chipfit.deploy.kernels import FEATURES, FusionRules, Kernel, kernels
from chipfit.deploy.profiling import NodeTime, label_kernels, profile_nodes


def _kernel(type_: str, name: str, h: int = 0, w: int = 0, out: int = 0, c_out: int = 0) -> Kernel:
    vals = dict.fromkeys(FEATURES, 0.0)
    vals.update(h_out=h, w_out=w, out_elems=out or 8 * h * w, c_out=c_out)
    return Kernel(type_, type_, name, tuple(float(vals[f]) for f in FEATURES))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU())
        self.c = nn.Conv2d(16, 32, 1)

    def forward(self, x):
        return self.c(self.b(self.a(x))).mean((2, 3))


@pytest.fixture(scope="module")
def convnet(tmp_path_factory):
    net = ConvNet().eval()
    path = export_sample(net, [[1, 8, 16, 16]], tmp_path_factory.mktemp("prof") / "net.onnx")
    return net, path


def test_nodes_come_in_the_runtimes_order_with_their_shapes(convnet):
    _, path = convnet
    nodes = profile_nodes(path, runs=5)
    ran = [o for o in executed_ops(path, compute_only=False) if o not in ("Constant",)]
    assert sorted(n.op for n in nodes) == sorted(ran)  # every executed node, each once
    convs = [n for n in nodes if n.op in ("Conv", "FusedConv")]
    assert len(convs) == 3 and all(n.seconds > 0 for n in nodes)
    assert [n.shape[-2:] for n in convs] == [(16, 16), (8, 8), (8, 8)]


def test_the_networks_convs_and_mean_get_their_in_network_times(convnet):
    net, path = convnet
    ks = kernels(count(net, (1, 8, 16, 16)), FusionRules("ort", nchwc_block=nchwc_block()), specs=False)
    nodes = profile_nodes(path, runs=5)
    labels, skipped = label_kernels(ks, nodes)
    got = {ks[i].type for i, _ in labels}
    assert {"conv", "dwconv", "reduce.mean"} <= got and not skipped
    by_name = {n.op: n.seconds for n in nodes}
    mean = next(s for i, s in labels if ks[i].type == "reduce.mean")
    assert mean == by_name.get("ReduceMean", by_name.get("GlobalAveragePool"))


def test_pairs_follow_shapes_not_order():
    ks = [_kernel("conv", "a", 16, 16), _kernel("dwconv", "b", 8, 8)]
    nodes = [NodeTime("n1", "Conv", (1, 16, 8, 8), 2e-6), NodeTime("n0", "FusedConv", (1, 8, 16, 16), 5e-6)]
    labels, skipped = label_kernels(ks, nodes)
    assert sorted(labels) == [(0, 5e-6), (1, 2e-6)] and not skipped


def test_an_nhwc_output_fits_its_map():
    labels, _ = label_kernels([_kernel("layer_norm", "n", 7, 7)],
                              [NodeTime("ln", "LayerNormalization", (1, 7, 7, 8), 1e-6)])
    assert labels == [(0, 1e-6)]


def test_a_class_whose_counts_differ_gives_no_labels_and_says_why():
    ks = [_kernel("conv", "a", 8, 8), _kernel("conv", "b", 8, 8), _kernel("act.gelu", "g", out=64)]
    nodes = [NodeTime("c", "Conv", (1, 8, 8, 8), 1e-6), NodeTime("g", "Gelu", (1, 64), 3e-7)]
    labels, skipped = label_kernels(ks, nodes)
    assert labels == [(2, 3e-7)] and skipped == {"conv": "2 kernels, 1 nodes"}


def test_an_attention_is_labelled_with_the_nodes_it_runs_as_and_the_linears_still_pair():
    """ONNX Runtime runs an attention as the scores' MatMul, the mask's Add, a Softmax and the MatMul by the values
    (a transpose of v in between is not part of it); those nodes leave the gemm and add classes."""
    ks = [_kernel("gemm", "qkv", out=3 * 64 * 16, c_out=48), _kernel("attention", "attn", h=64, w=8, out=2 * 64 * 8),
          _kernel("gemm", "proj", out=64 * 16, c_out=16)]
    nodes = [NodeTime("qkv", "MatMul", (1, 64, 48), 4e-6), NodeTime("qk", "FusedMatMul", (1, 2, 64, 64), 3e-6),
             NodeTime("mask", "Add", (1, 2, 64, 64), 1e-6), NodeTime("sm", "Softmax", (1, 2, 64, 64), 5e-6),
             NodeTime("vt", "Transpose", (1, 2, 64, 8), 7e-6), NodeTime("av", "MatMul", (1, 2, 64, 8), 2e-6),
             NodeTime("proj", "MatMul", (1, 64, 16), 1e-6)]
    labels, skipped = label_kernels(ks, nodes)
    assert dict(labels) == pytest.approx({0: 4e-6, 1: 3e-6 + 1e-6 + 5e-6 + 2e-6, 2: 1e-6})
    assert set(skipped) == {"transpose"}  # a transpose node and no transpose kernel


def test_attention_groups_are_one_per_softmax():
    from chipfit.deploy.profiling import attention_nodes

    block = [NodeTime("qk", "MatMul", (4, 16, 16), 2e-6), NodeTime("sm", "Softmax", (4, 16, 16), 3e-6),
             NodeTime("av", "MatMul", (4, 16, 8), 1e-6)]
    groups = attention_nodes(block + [NodeTime("x", "Conv", (1, 8, 4, 4), 1e-6)] + block)
    assert [idx for idx, _ in groups] == [[0, 1, 2], [4, 5, 6]]
    assert all(n.shape == (4, 16, 8) and n.seconds == pytest.approx(6e-6) for _, n in groups)
    assert attention_nodes([NodeTime("sm", "Softmax", (4, 16, 16), 3e-6)]) == []  # a softmax alone is no attention


def test_openvinos_one_node_attentions_are_labelled():
    """On AVX-512 OpenVINO runs an attention (scores, softmax, by the values, the transpose after) as one Subgraph
    of the ``batch, L, heads, d`` output; an element-wise Subgraph of another shape is not taken for one."""
    att = Kernel("attention", "attention", "blk:attention",
                 tuple(float(dict(out_elems=9 * 8 * 64 * 4).get(f, 0.0)) for f in FEATURES), shape=(9, 8, 64, 4))
    nodes = [NodeTime("add", "Subgraph", (1, 24, 24, 32), 9e-6), NodeTime("node_transpose_1", "Subgraph",
                                                                          (9, 64, 8, 4), 2.5e-4)]
    labels, skipped = label_kernels([att], nodes, "openvino")
    assert labels == [(0, 2.5e-4)] and "attention" not in skipped
    assert label_kernels([att], nodes[:1], "openvino")[0] == []  # no node of its shape: no label


def test_openvinos_channel_shuffles_label_their_transposes():
    """A channel shuffle's 5-axis transpose runs as one ShuffleChannels node on OpenVINO; the other transposes keep
    their own pairing."""
    ks = _transposes([((1, 58, 2, 14, 14), "permute"), ((1, 14, 14, 8), "permute_1")])
    nodes = [NodeTime("shuffle", "ShuffleChannels", (1, 116, 14, 14), 7e-6),
             NodeTime("node_permute_1", "Transpose", (1, 14, 14, 8), 2e-6)]
    labels, skipped = label_kernels(ks, nodes, "openvino")
    assert sorted(labels) == [(0, 7e-6), (1, 2e-6)] and not skipped


def _transposes(shapes_ops):
    return [Kernel("transpose", "transpose", f"t{i}", tuple(float(dict(out_elems=_n(s)).get(f, 0.0)) for f in FEATURES),
                   shape=s, op=op) for i, (s, op) in enumerate(shapes_ops)]


def _n(shape):
    out = 1
    for d in shape:
        out *= d
    return out


def test_transposes_the_runtime_removed_leave_the_survivors_paired_by_name():
    """Three permutes of one shape, two cancelled by the runtime: the survivor keeps the exporter's name. A node whose
    name's number drifted (another shape under it) pairs with nothing."""
    ks = _transposes([((1, 8, 4, 4), "permute"), ((1, 8, 4, 4), "permute_1"), ((1, 8, 4, 4), "permute_2"),
                      ((1, 4, 4, 8), "permute_3")])
    nodes = [NodeTime("node_permute_1", "Transpose", (1, 8, 4, 4), 2e-6),
             NodeTime("node_permute_3", "Transpose", (1, 8, 4, 4), 3e-6)]
    labels, skipped = label_kernels(ks, nodes)
    assert labels == [(1, 2e-6)] and "paired by name or shape" in skipped["transpose"]


def test_unnamed_transposes_pair_where_kernels_and_nodes_of_a_shape_are_as_many():
    """q, k and v transposes the runtime made up names for: a shape with as many kernels as nodes pairs (unit axes
    aside); one with a node missing does not."""
    ks = _transposes([((2, 16, 8), ""), ((2, 16, 8), ""), ((4, 4, 8), ""), ((4, 4, 8), "")])
    nodes = [NodeTime("Transpose", "Transpose", (1, 2, 16, 8), 1e-6), NodeTime("T_1", "Transpose", (1, 2, 16, 8), 3e-6),
             NodeTime("T_2", "Transpose", (4, 4, 8), 5e-6)]
    labels, _ = label_kernels(ks, nodes)
    assert labels == [(0, 1e-6), (1, 3e-6)]


def test_a_node_of_another_shape_is_not_taken():
    labels, skipped = label_kernels([_kernel("conv", "a", 8, 8)], [NodeTime("c", "Conv", (1, 8, 4, 4), 1e-6)])
    assert labels == [] and "a" in skipped["conv"]


def _rows(type_: str, n: int, seconds: float):
    return [{"type": type_, "features": [float(i + 1)] * len(FEATURES), "s": seconds} for i in range(n)]


def test_enough_in_network_labels_replace_the_samples_measured_alone():
    alone = _rows("conv", 40, 1e-5) + _rows("dwconv", 40, 1e-5)
    inside = _rows("conv", MIN_IN_NETWORK, 2e-5) + _rows("dwconv", MIN_IN_NETWORK - 1, 2e-5)
    models = fit_all(alone, in_network=inside)
    assert models["conv"].samples == MIN_IN_NETWORK and models["dwconv"].samples == 40
    x = [[5.0] * len(FEATURES)]
    assert models["conv"].predict(x)[0] == pytest.approx(2e-5, rel=0.05)
    assert models["dwconv"].predict(x)[0] == pytest.approx(1e-5, rel=0.05)


def test_a_type_only_networks_labelled_is_fitted_on_those():
    models = fit_all(_rows("conv", 20, 1e-5), in_network=_rows("act.gelu", 5, 1e-6))
    assert models["act.gelu"].samples == 5


def test_the_network_log_survives_an_interruption_and_another_machine_is_ignored(tmp_path):
    env = {"cpu": "x"}
    log = NetworkLog(tmp_path / "n.jsonl", env)
    log.add("0:a", 1e-3, {"Conv": 2}, [NodeTime("c", "Conv", (1, 8, 4, 4), 1e-4)])
    with (tmp_path / "n.jsonl").open("a") as f:
        f.write(json.dumps({"name": "1:b", "measured_s": 1.0, "env": {"cpu": "y"}}) + "\n")
        f.write('{"name": "2:c", "meas')  # cut short
    again = NetworkLog(tmp_path / "n.jsonl", env)
    assert list(again.rows) == ["0:a"]
    assert NetworkLog.nodes(again.rows["0:a"]) == [NodeTime("c", "Conv", (1, 8, 4, 4), 1e-4)]


def test_the_least_profiler_cost_any_network_measured_comes_off_every_networks_nodes(tmp_path):
    """A network profiled in a slow spell measured the profiler's cost per node at 3.5 us; the calm one's 1.5 us is
    what comes off both networks' raw nodes (a 2 us node keeps 0.5 us, not the 10 ns floor). Rows written before
    the cost was kept are taken as they are."""
    from chipfit.deploy.build import node_cost

    log = NetworkLog(tmp_path / "n.jsonl", {"cpu": "x"})
    raw = [NodeTime("c", "Conv", (1, 8, 4, 4), 2e-6), NodeTime("r", "Relu", (1, 8, 4, 4), 1e-6)]
    slow = log.add("0:a", 1e-3, {}, raw, node_cost_s=3.5e-6)
    calm = log.add("1:b", 1e-3, {}, raw, node_cost_s=1.5e-6)
    old = log.add("2:c", 1e-3, {}, raw)
    assert node_cost([slow, calm, old]) == 1.5e-6 and node_cost([old]) is None
    assert [n.seconds for n in NetworkLog.nodes(slow, node_cost([slow, calm]))] == pytest.approx([0.5e-6, 1e-8])
    assert [n.seconds for n in NetworkLog.nodes(slow)] == pytest.approx([1e-8, 1e-8])  # its own cost: all at floor
    assert [n.seconds for n in NetworkLog.nodes(old, 1.5e-6)] == [2e-6, 1e-6]


def test_the_deployed_file_pairs_as_the_sample_file_does(tmp_path):
    """The pairing reads op types and shapes, not node names: the torch.export file ``chipfit deploy`` writes (other
    node names than the legacy exporter's) pairs the same kernels."""
    from chipfit.deploy.onnx import export_float

    net = ConvNet().eval()
    path = export_float(net, tmp_path / "net.onnx", (1, 8, 16, 16))
    ks = kernels(count(net, (1, 8, 16, 16)), FusionRules("ort", nchwc_block=nchwc_block()), specs=False)
    labels, skipped = label_kernels(ks, profile_nodes(path, runs=3))
    assert {ks[i].type for i, _ in labels} >= {"conv", "dwconv", "reduce.mean"} and not skipped


def test_openvinos_counters_label_its_convolutions(convnet):
    pytest.importorskip("openvino")
    from chipfit.deploy.profiling import profile_nodes_openvino

    net, path = convnet
    ks = kernels(count(net, (1, 8, 16, 16)), FusionRules("openvino"), specs=False)
    nodes = profile_nodes_openvino(path, runs=3, warmup=2, seconds=0.0)
    assert {"Convolution", "GroupConvolution"} <= {n.op for n in nodes} and all(n.seconds > 0 for n in nodes)
    labels, skipped = label_kernels(ks, nodes, "openvino")
    assert sorted(ks[i].type for i, _ in labels) == ["conv", "conv", "dwconv", "reduce.mean"] and not skipped


def test_openvino_counters_read_twice_give_the_steady_runs_time():
    """OpenVINO's counter is the running average since compile, in whole microseconds, of run times truncated to
    whole microseconds. Simulated nodes of 2-40 us whose first runs are slow (3x, decaying): two readings recover
    each node's steady time within a microsecond and without bias; the median of the readings (what a per-run
    counter would be read by) is biased by the first runs and the truncations."""
    import numpy as np

    from chipfit.deploy.profiling import counter_seconds

    rng = np.random.default_rng(0)
    errs, naive = [], []
    for steady in rng.uniform(2.0, 40.0, 300):
        t = steady * (1 + 2.0 * np.exp(-np.arange(60) / 2.0)) + rng.normal(0, 0.3, 60)  # 60 runs, the first slow
        totals = np.cumsum(np.floor(t))
        avgs = np.floor(totals / np.arange(1, 61))
        errs.append(1e6 * counter_seconds(avgs[9], 10, avgs[59], 60) - steady)
        naive.append(float(np.median(avgs[10:])) - steady)
    errs, naive = np.array(errs), np.array(naive)
    assert np.abs(errs).max() < 1.2 and abs(errs.mean()) < 0.15
    assert naive.mean() > 1.0  # what reading the average as a run's time would give


def test_groups_timed_in_context_keep_their_scale_and_the_others_may_move():
    from collections import Counter
    from types import SimpleNamespace

    from chipfit.deploy.build import IN_NETWORK_PRIOR, group_priors

    preds = [SimpleNamespace(kernels=[("a", "conv", 9e-6), ("b", "dwconv", 1e-6), ("c", "act.gelu", 1e-6),
                                      ("d", "eltwise.add", 2e-6), ("e", "attention", float("nan"))])]
    got = group_priors(preds, Counter({"conv": MIN_IN_NETWORK, "act.gelu": MIN_IN_NETWORK, "dwconv": 3}))
    assert got == {"conv": IN_NETWORK_PRIOR, "dwconv": 0.3, "elementwise": 0.3}  # gelu 1/3 of its group's time
